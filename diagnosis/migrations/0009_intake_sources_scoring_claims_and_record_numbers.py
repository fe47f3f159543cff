"""The intake's journal of files being written, the door each X-ray came in by, who is scoring it,
refusals in the audit trail, and record numbers kept as given but unique ignoring case.

X-rays stored before this was recorded: those the DICOM listener stored (its user, and the clinical
note it wrote, "Received from DICOM AE <title>.") are marked as received through it, with the AE
title; the page and the API did not say which they were, so their source stays empty. Record
numbers were upper-cased until now, so none differ only in case; should an administrator have
made two such patients, the migration stops and names them.
"""

import re

import django.db.models.functions.text
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.models.functions import Upper

DICOM_NOTE = re.compile(r"^Received from DICOM AE (?P<ae>.{0,16})\.$")


def mark_received_by_the_listener(apps, schema_editor):
    XRay = apps.get_model("diagnosis", "XRay")
    user = getattr(settings, "DISPREDO_DICOM_USER", "dicom-receiver")
    for xray in XRay.objects.filter(models.Q(uploaded_by__username=user) | models.Q(clinical_note__startswith="Received from DICOM AE ")):
        match = DICOM_NOTE.match(xray.clinical_note)
        xray.source = "dicom"
        xray.calling_ae_title = match["ae"].strip() if match else ""
        xray.save(update_fields=["source", "calling_ae_title"])


def refuse_record_numbers_differing_only_in_case(apps, schema_editor):
    Patient = apps.get_model("diagnosis", "Patient")
    clashes = (
        Patient.objects.annotate(key=Upper("mrn")).values("key").annotate(count=models.Count("pk")).filter(count__gt=1)
    )
    keys = [row["key"] for row in clashes]
    if keys:
        mrns = sorted(Patient.objects.annotate(key=Upper("mrn")).filter(key__in=keys).values_list("mrn", flat=True))
        raise RuntimeError(
            "These patients' record numbers differ only in case, which Dispredo now treats as the same record "
            f"number: {', '.join(mrns)}. Change or merge them in the admin, then run migrate again."
        )


class Migration(migrations.Migration):

    dependencies = [
        ('diagnosis', '0008_auditaction_export'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='IncomingFile',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text="The file's name in the X-ray storage.", max_length=200, unique=True)),
                ('writer', models.CharField(help_text='The process writing it (host:pid:start).', max_length=100)),
                ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['started_at'],
            },
        ),
        migrations.AddField(
            model_name='xray',
            name='calling_ae_title',
            field=models.CharField(blank=True, max_length=16, verbose_name='sent by AE title'),
        ),
        migrations.AddField(
            model_name='xray',
            name='scoring_by',
            field=models.CharField(blank=True, editable=False, max_length=100),
        ),
        migrations.AddField(
            model_name='xray',
            name='scoring_since',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='xray',
            name='source',
            field=models.CharField(blank=True, choices=[('page', 'Upload page'), ('api', 'REST API'), ('dicom', 'DICOM listener')], help_text='The door it came in by; empty for X-rays stored before this was recorded.', max_length=10, verbose_name='received through'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('view', 'Viewed'), ('create', 'Created'), ('change', 'Changed'), ('delete', 'Deleted'), ('export', 'Exported'), ('refuse', 'Refused')], max_length=10),
        ),
        migrations.AlterField(
            model_name='patient',
            name='mrn',
            field=models.CharField(max_length=64, verbose_name='medical record number'),
        ),
        migrations.AlterField(
            model_name='xray',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('scoring', 'Being scored'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=10),
        ),
        migrations.RunPython(mark_received_by_the_listener, migrations.RunPython.noop),
        migrations.RunPython(refuse_record_numbers_differing_only_in_case, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='patient',
            constraint=models.UniqueConstraint(django.db.models.functions.text.Upper('mrn'), name='one_patient_per_record_number_ignoring_case', violation_error_message='Patient with this Medical record number already exists.'),
        ),
    ]
