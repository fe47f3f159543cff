from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created through the API (their key is shown once); here an administrator sees
    and revokes (deletes) anyone's."""

    list_display = ["name", "user", "key_start", "created_at", "last_used_at", "expires_at"]
    list_filter = ["user"]
    search_fields = ["name", "user__username", "key_start"]
    readonly_fields = ["user", "name", "key_start", "created_at", "last_used_at", "expires_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
