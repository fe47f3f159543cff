"""Tokens expire (issue 26): each token stores when. Tokens issued before get 90 days from their
creation, the default lifetime of a new one."""

from datetime import timedelta

from django.db import migrations, models
from django.db.models import F

import api.models

EXISTING_TOKEN_DAYS = 90


def expire_existing_tokens(apps, schema_editor):
    ApiToken = apps.get_model("api", "ApiToken")
    ApiToken.objects.using(schema_editor.connection.alias).update(
        expires_at=F("created_at") + timedelta(days=EXISTING_TOKEN_DAYS)
    )


class Migration(migrations.Migration):

    dependencies = [
        ("api", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(editable=False, null=True),
        ),
        migrations.RunPython(expire_existing_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(
                default=api.models.default_expiry, editable=False, help_text="Refused from then on."
            ),
        ),
    ]
