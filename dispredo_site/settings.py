"""Dispredo settings: every deployment-specific value comes from the environment.

Local defaults are safe: DEBUG off, SQLite and private files under ./var, a secret key
generated on first start. docs/configuration.md lists the variables.
"""

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from api import conf as api_conf  # plain values: nothing of Django is loaded

from .env import (
    database, env_bool, env_float, env_int, env_list, env_path, env_rate, env_str, secret_key, xray_storage,
)
from .observability.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# Everything the application writes (database, uploads, trained models) lives here.
DATA_DIR = env_path("DISPREDO_DATA_DIR", BASE_DIR / "var")

SECRET_KEY = secret_key("DISPREDO_SECRET_KEY", DATA_DIR / "secret_key")
DEBUG = env_bool("DISPREDO_DEBUG", False)
ALLOWED_HOSTS = env_list("DISPREDO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DISPREDO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "diagnosis",
    "mltrain",
]

MIDDLEWARE = [
    # First: refuses an oversized request from its Content-Length, before anything reads the body.
    "dispredo_site.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before any view (and before CSRF's check parses a form): anonymous bodies, idle sessions, no-store.
    "dispredo_site.middleware.AnonymousBodyMiddleware",
    "dispredo_site.middleware.IdleSessionMiddleware",
    "dispredo_site.middleware.NoStoreMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dispredo_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "diagnosis.context_processors.awaiting_reading",
            ],
        },
    },
]

WSGI_APPLICATION = "dispredo_site.wsgi.application"

DATABASES = {"default": database("DATABASE_URL", DATA_DIR / "dispredo.sqlite3")}
DATABASES["default"].update(CONN_MAX_AGE=60, CONN_HEALTH_CHECKS=True)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Concurrent web workers write to SQLite: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Nothing of the user's names in it: "nurse1234567" is refused for "nurse" (dispredo_site/passwords.py).
    {"NAME": "dispredo_site.passwords.UserNamePartsValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "diagnosis:worklist"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# One date format on every page: ISO dates (2026-11-30) and times (2026-11-30 14:05).
# Localisation always applies in Django 5 and the en-gb locale would win over these settings
# ("30 Nov 2026"), so dispredo_site/formats/en/formats.py repeats them for every English locale.
DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
# ISO first: it is also the value an <input type="date"> is rendered with (en-gb would give 30/11/2026,
# which the browser shows as blank, so saving the form would drop the date).
DATE_INPUT_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%d/%m/%y"]
FORMAT_MODULE_PATH = ["dispredo_site.formats"]

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("DISPREDO_STATIC_ROOT", BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    # X-ray files (XRay.image, through diagnosis.storage): the private folder below by default, or an
    # S3-compatible bucket every server shares (DISPREDO_STORAGE=s3; README "File storage").
    "xrays": xray_storage(),
}
# Serve straight from the app folders, so the start command needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Uploaded X-rays: a private folder with no URL; images are served only by a view that checks the user.
MEDIA_ROOT = env_path("DISPREDO_MEDIA_ROOT", DATA_DIR / "media")
# No URL pattern serves MEDIA_URL, and the X-ray storages' url() refuses: the value is only a placeholder.
MEDIA_URL = "/media/"
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# One X-ray per upload; the admin's forms send none.
DATA_UPLOAD_MAX_NUMBER_FILES = 10
# Largest X-ray accepted (a 1024x1024 NIH PNG is about 0.5 MB; a 16-bit 3000x3000 one about 18 MB).
DISPREDO_MAX_UPLOAD_BYTES = 40 * 1024 * 1024
# Largest decoded image (width x height x bytes per pixel), checked from the header before decoding
# (diagnosis/image_limits.py): a 100 KB PNG can declare 98 MB of 16-bit pixels.
DISPREDO_MAX_IMAGE_BYTES = env_int("DISPREDO_MAX_IMAGE_BYTES", 48 * 1024 * 1024)
# Django skips a multipart part whose header is not UTF-8: this handler makes it readable first.
FILE_UPLOAD_HANDLERS = [
    "diagnosis.intake.names.ReadableNamesUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Trained model artefacts (train writes here); the shipped default model lives in the repository.
DISPREDO_MODEL_DIR = env_path("DISPREDO_MODEL_DIR", DATA_DIR / "models")
DISPREDO_DEFAULT_MODEL_DIR = BASE_DIR / "models" / "default"
# Preprocessed training data (mltrain writes here).
DISPREDO_MLTRAIN_DIR = env_path("DISPREDO_MLTRAIN_DIR", DATA_DIR / "mltrain")
# The activation gate (diagnosis.gate.activation) refuses a version whose mean AUROC on the held-out clinic
# readings is more than this below the active version's.
DISPREDO_GATE_MARGIN = env_float("DISPREDO_GATE_MARGIN", 0.02, 0.0, 1.0)

# The DICOM listener (manage.py dicom_listener): a C-STORE SCP a PACS or modality sends chest X-rays to.
DISPREDO_DICOM_AE_TITLE = env_str("DISPREDO_DICOM_AE_TITLE", "DISPREDO")
DISPREDO_DICOM_PORT = env_int("DISPREDO_DICOM_PORT", 11112)
DISPREDO_DICOM_BIND = env_str("DISPREDO_DICOM_BIND", "127.0.0.1")
# Calling AE titles allowed to send; empty accepts any.
DISPREDO_DICOM_CALLING_AE_TITLES = env_list("DISPREDO_DICOM_CALLING_AE_TITLES", [])
# The system user received X-rays are stored under (created without a usable password).
DISPREDO_DICOM_USER = env_str("DISPREDO_DICOM_USER", "dicom-receiver")
# FHIR output (diagnosis.interop.fhir): the base of Dispredo's own identifier and code systems, a URN or a URL.
DISPREDO_FHIR_BASE = env_str("DISPREDO_FHIR_BASE", "urn:dispredo")

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DISPREDO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DISPREDO_BEHIND_PROXY") else None

# ---- Security hardening (issue 17) ---------------------------------------------------------------

# Served over HTTPS (DISPREDO_SECURE_COOKIES, with DISPREDO_BEHIND_PROXY behind a proxy): plain HTTP is
# redirected and browsers are told to use HTTPS only (HSTS, for this host and its subdomains).
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DISPREDO_HSTS_SECONDS", 365 * 24 * 3600, low=0) if SESSION_COOKIE_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SESSION_COOKIE_SECURE
# Preloading binds the whole registered domain for good once submitted to the browsers' list: the
# clinic's IT decides that (DISPREDO_HSTS_PRELOAD=true), so check --deploy's reminder is silenced.
SECURE_HSTS_PRELOAD = env_bool("DISPREDO_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD or not SESSION_COOKIE_SECURE else ["security.W021"]

# Idle timeout: a session unused for this long ends (IdleSessionMiddleware renews it while in use),
# and closing the browser ends it on a shared workstation.
SESSION_COOKIE_AGE = env_int("DISPREDO_SESSION_IDLE_MINUTES", 30, low=1) * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Anonymous requests may send a body only to these pages (URL names); see AnonymousBodyMiddleware.
DISPREDO_ANONYMOUS_POST_URLS = ["login", "logout", "admin:login", "admin:logout"]
# Left to the REST framework, which authenticates before it parses a body.
DISPREDO_ANONYMOUS_BODY_EXEMPT = ["/api/"]

# Content Security Policy (django-csp): scripts only from our own static files, never inline.
# Inline style attributes stay allowed: the findings' bars are drawn with style="width: ...%", and a
# style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        # data: for the admin's ROC curves, blob: for the upload page's preview of the chosen file.
        "img-src": [SELF, "data:", "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Sign-in limits (django-axes, dispredo_site/lockout.py). Lockout: after DISPREDO_LOGIN_FAILURE_LIMIT
# failures for one user name from one address, that pair is refused (even with the right password)
# for DISPREDO_LOGIN_COOLOFF_MINUTES after its last failure. Throttle: an address with
# DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT failures (any user names) in the last
# DISPREDO_LOGIN_ADDRESS_WINDOW_MINUTES is refused until they age out. Every failure is logged and kept.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("DISPREDO_LOGIN_FAILURE_LIMIT", 5, low=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DISPREDO_LOGIN_COOLOFF_MINUTES", 15, low=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT", 25, low=AXES_FAILURE_LIMIT)
DISPREDO_LOGIN_ADDRESS_WINDOW = timedelta(minutes=env_int("DISPREDO_LOGIN_ADDRESS_WINDOW_MINUTES", 15, low=1))
AXES_HANDLER = "dispredo_site.lockout.SignInLimitsHandler"
# A refused attempt checks no password: it neither restarts the pause nor counts against the address.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "dispredo_site.lockout.lockout_response"
# A successful sign-in does not clear the count: it would let one account clear its address's
# failures, and so the failures against other accounts from there.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "dispredo_site.security.client_address"
AXES_CLIENT_STR_CALLABLE = "dispredo_site.security.client_description"
# One row per failed sign-in: the address throttle counts these.
AXES_ENABLE_ACCESS_FAILURE_LOG = True

# Every line JSON on the console, with the request id where there is one (observability/logs.py).
LOGGING = logging_config()

# ---------------------------------------------------------------------------------------------
# REST API (api app, under /api/): Django REST framework, OpenAPI schema and docs, rate limits.
# ---------------------------------------------------------------------------------------------
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "drf_spectacular_sidecar", "api"]


# Per user (per address before sign-in); over the limit the API answers 429 with Retry-After.
DISPREDO_API_REQUEST_RATE = env_rate("DISPREDO_API_REQUEST_RATE", "120/min")
DISPREDO_API_UPLOAD_RATE = env_rate("DISPREDO_API_UPLOAD_RATE", "20/min")
# Token requests with a password, per address.
DISPREDO_API_SIGN_IN_RATE = env_rate("DISPREDO_API_SIGN_IN_RATE", "10/min")
# A new API token expires this many days after it is created (answered 401 from then on).
DISPREDO_API_TOKEN_DAYS = env_int("DISPREDO_API_TOKEN_DAYS", 90, low=1, high=3650)
# Rate counts are rows of a table (api.models.RateCount), shared by every web worker of every server
# and counted atomically (a per-process memory cache would let each worker allow the full rate).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The REST framework's and the OpenAPI schema's settings are the api app's own (api/conf.py).
REST_FRAMEWORK, SPECTACULAR_SETTINGS = api_conf.REST_FRAMEWORK, api_conf.SPECTACULAR_SETTINGS

# ---------------------------------------------------------------------------------------------
# Health, metrics and request logs (issue 19, dispredo_site/observability/): /healthz, /metrics,
# one JSON line per request with a request id, and every log line in JSON with that id.
# ---------------------------------------------------------------------------------------------

# First: times and logs every request (static files and early refusals too), under its request id.
MIDDLEWARE.insert(0, "dispredo_site.observability.middleware.RequestLogMiddleware")

# /metrics answers a bearer of this token (from anywhere), or a request from this machine when not
# behind the proxy. Empty: loopback only.
DISPREDO_METRICS_TOKEN = env_str("DISPREDO_METRICS_TOKEN", "").strip()
if DISPREDO_METRICS_TOKEN and len(DISPREDO_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured(
        "DISPREDO_METRICS_TOKEN must be at least 16 characters; make one with "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'."
    )
# A load balancer or Prometheus reaching gunicorn directly speaks plain HTTP: not redirected to HTTPS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
