"""The API's access rule: the pages' rule (``diagnosis.records.access``), with its message."""

from rest_framework.permissions import BasePermission

from diagnosis.records.access import STAFF_ONLY_MESSAGE


class IsClinicStaff(BasePermission):
    """Signed-in (or token-bearing) active staff users; anonymous requests get 401, others 403."""

    message = STAFF_ONLY_MESSAGE

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
