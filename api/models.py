"""API tokens: a user may hold several (one per connected system), each revocable on its own.

Only the SHA-256 digest of a key is stored: the key is shown once, when it is created, so a copy
of the database does not hand out working tokens. A token expires DISPREDO_API_TOKEN_DAYS after it
is created (the expiry is stored with it, so changing the setting leaves issued tokens as they are).
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

KEY_PREFIX = "dsp_"
# The first characters of a key, kept in clear to tell a user's tokens apart.
SHOWN_CHARACTERS = 12
# How stale ``last_used_at`` may get before a request writes it again (not one write per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def digest(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def expiry_from(moment):
    """When a token created at ``moment`` expires."""
    return moment + timedelta(days=settings.DISPREDO_API_TOKEN_DAYS)


def default_expiry():
    return expiry_from(timezone.now())


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the RIS that uses it.")
    key_digest = models.CharField("SHA-256 of the key", max_length=64, unique=True, editable=False)
    key_start = models.CharField("start of the key", max_length=SHOWN_CHARACTERS, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(default=default_expiry, editable=False, help_text="Refused from then on.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.key_start}…) of {self.user}"

    @classmethod
    def issue(cls, user, name):
        """A new token of ``user`` and its key; the key is not stored, so it is returned only here."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = timezone.now()
        token = cls.objects.create(
            user=user, name=name, key_digest=digest(key), key_start=key[:SHOWN_CHARACTERS],
            created_at=now, expires_at=expiry_from(now),
        )
        return token, key

    @classmethod
    def find(cls, key):
        """The token whose key is ``key``, with its user, or None."""
        return cls.objects.select_related("user").filter(key_digest=digest(key)).first()

    @property
    def has_expired(self):
        return self.expires_at <= timezone.now()

    def mark_used(self):
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class RateCount(models.Model):
    """The requests one client made in the current window of one rate limit (api.throttles).

    One row per limit and client, shared by every worker of every server. ``hit`` counts a request
    in one statement (an upsert that returns the new count), so concurrent requests, in whatever
    processes, each get their own number: of N requests at a limit of M, exactly M are allowed.
    """

    key = models.CharField(max_length=200, unique=True, help_text="The limit's scope and the client.")
    window_end = models.BigIntegerField(db_index=True, help_text="When the window counted ends (Unix time).")
    count = models.PositiveIntegerField()

    class Meta:
        verbose_name = "API rate count"

    def __str__(self):
        return f"{self.key}: {self.count}"

    @classmethod
    def hit(cls, key, duration, now):
        """Counts a request of ``key`` at ``now`` (Unix time) in windows of ``duration`` seconds:
        (its number in the window it is counted in, when that window ends)."""
        window_end = (int(now) // duration + 1) * duration
        table, quote = cls._meta.db_table, connection.ops.quote_name
        t, k, end, count = quote(table), quote("key"), quote("window_end"), quote("count")
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {t} ({k}, {end}, {count}) VALUES (%s, %s, 1) "
                f"ON CONFLICT ({k}) DO UPDATE SET "
                # The same window: one more. A later one: the first of it. (An earlier one, from a
                # server whose clock is behind, counts in the stored window.)
                f"{count} = CASE WHEN {t}.{end} >= excluded.{end} THEN {t}.{count} + 1 ELSE 1 END, "
                f"{end} = CASE WHEN {t}.{end} >= excluded.{end} THEN {t}.{end} ELSE excluded.{end} END "
                f"RETURNING {count}, {end}",
                [key, window_end],
            )
            number, window_end = cursor.fetchone()
            if number == 1:
                # A window started: the rows of windows that have ended count for nothing, and go.
                cursor.execute(f"DELETE FROM {t} WHERE {end} <= %s", [int(now)])
        return number, window_end
