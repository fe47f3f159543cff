"""The admin site: every concern's admin pages, registered here (admin autodiscovery imports this module)."""

from django.contrib import admin

from diagnosis.gate.admin import ModelVersionAdmin
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings import admin as readings_admin
from diagnosis.readings.models import Reading
from diagnosis.records import admin as records_admin
from diagnosis.records.models import AuditEvent, Patient, Prediction, XRay


class XRayAdmin(records_admin.XRayAdmin):
    """An X-ray's page: its readings (every version) above the model's predictions."""

    inlines = [readings_admin.ReadingInline, *records_admin.XRayAdmin.inlines]


admin.site.register(Patient, records_admin.PatientAdmin)
admin.site.register(XRay, XRayAdmin)
admin.site.register(Prediction, records_admin.PredictionAdmin)
admin.site.register(AuditEvent, records_admin.AuditEventAdmin)
admin.site.register(ModelVersion, ModelVersionAdmin)
admin.site.register(Reading, readings_admin.ReadingAdmin)
