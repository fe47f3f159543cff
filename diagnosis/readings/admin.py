"""Readings in the admin: listed, searched and shown, never written (the X-ray page enforces the rules)."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from diagnosis.readings.models import Reading
from diagnosis.readings.rules import mark_rows


class ReadOnly:
    """Readings are written through the X-ray page, where the sign-off rules hold: never here."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadingAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["xray", "version", "status", "signed_by", "signed_at", "updated_by", "updated_at"]
    list_filter = ["status", "signed_at", ("signed_by", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["xray__patient__mrn", "xray__patient__name", "impression", "amendment_reason"]
    list_select_related = ["xray__patient", "signed_by", "updated_by"]
    fields = [
        "xray", "version", "status", "marks_table", "impression", "amendment_reason",
        "created_by", "created_at", "updated_by", "updated_at", "signed_by", "signed_at",
    ]
    readonly_fields = fields
    date_hierarchy = "updated_at"

    @admin.display(description="Marks")
    def marks_table(self, obj):
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", ((shown, mark) for _, shown, mark in mark_rows(obj)))
        return format_html("<table><tr><th>Finding</th><th>Mark</th></tr>{}</table>", rows)


class ReadingInline(ReadOnly, admin.TabularInline):
    """Every version of the X-ray's reading, newest first, on its admin page."""

    model = Reading
    fields = ["version", "status", "present", "impression", "amendment_reason", "signed_by", "signed_at"]
    readonly_fields = fields
    extra = 0
    show_change_link = True
    ordering = ["-version"]

    @admin.display(description="Marked present")
    def present(self, obj):
        return ", ".join(obj.present_findings()) or "—"
