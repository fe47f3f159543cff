"""Load benchmark: the whole application under gunicorn, with concurrent signed-in clients uploading X-rays.

    .venv/bin/python -m bench.load                          # 8, then 32 clients, 20 s each
    .venv/bin/python -m bench.load --clients 2 4 --seconds 5
    .venv/bin/python -m bench.load --workers 4 --threads 2 --json out.json
    .venv/bin/python -m bench.load --database postgres --servers 2   # two servers, one PostgreSQL
    .venv/bin/python -m bench.load --against main --clients 8      # this checkout and main, in turn

What it does:

1. Makes a fresh data directory (SQLite database, uploads) in a temporary folder and runs
   ``manage.py setup`` there with ``DISPREDO_ADMIN_PASSWORD`` set, so a known staff account exists.
   With ``--database postgres`` the database is instead a throw-away PostgreSQL cluster
   (``dispredo_site.testing.postgres``, the one bin/test uses, started with PostgreSQL's durability
   settings: initdb and pg_ctl in a temporary folder, on a free 127.0.0.1 port).
   The shipped model in models/default registers itself; without one a tiny test model is
   registered instead (and the output says so), or the artefact given with ``--artefact``.
2. Starts ``--servers`` gunicorn instances (default 1) on 127.0.0.1, each on a free port (default
   2 workers x 4 threads, as bin/start), all on the same database and the same upload folder.
3. Signs in one session per client (GET the login page, POST it with its CSRF token) and
   registers a patient (POST /patients/new/). With several servers, client i signs in on server
   i and sends its k-th upload to server i + k, and loads the result page (and, with
   ``--fetch-images``, the image) from the next one: every request after the first depends on a
   session and files another server wrote.
4. For each client count: that many threads, each with its own session, upload real NIH X-rays
   (64, 256 and 1024 px in turn) to /upload/ and load the result page they are redirected to,
   for ``--seconds`` or ``--max-uploads``, whichever comes first. Prints uploads/s, latency
   percentiles (from sending the upload to the result page loaded) and errors.
5. Reads the memory of the gunicorn workers, stops gunicorn (SIGTERM, then waits), and checks
   the database: every accepted upload (each redirect to /xrays/<id>/) has its row with the
   uploaded file's SHA-256, its file on disk with that content, status done and exactly 14
   predictions, one per finding; no id was given to two uploads; rows = files = accepted uploads.
   Server-side tracebacks are printed.

Exit status: 0 when all is well, 1 when the database check fails (or the server could not be
run), 2 when the check passes but some requests failed (rows or files without an accepted upload
are then only noted: a request can fail after storing).

Only 127.0.0.1 is ever contacted. Nothing is written into the repository; ``--keep`` keeps the
temporary folder (database, uploads, server log) for inspection.

The parts: ``options`` (the command line), ``clients`` (a signed-in browser-like HTTP client),
``uploads`` (one upload, a level of concurrent clients, its figures), ``servers`` (setup of the
data directory and gunicorn), ``gunicorn_hooks`` (the config module gunicorn reads), ``database``
(the throw-away PostgreSQL cluster), ``checks`` (what was stored), ``report`` (the tables) and
``__main__`` (the run, in order).
"""
