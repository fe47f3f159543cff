"""Creating, listing and revoking API tokens.

A token is created with the user's password (or from a signed-in browser session), never from
another token, so a leaked token cannot mint fresh ones. A user revokes their own tokens; a user
with the ``api.delete_apitoken`` permission (an administrator) revokes anyone's.
"""

import logging

from django.contrib.auth.forms import AuthenticationForm
from django.forms.forms import NON_FIELD_ERRORS
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from diagnosis.records.access import STAFF_ONLY_MESSAGE

from .errors import NotSignedIn, form_data, form_error
from .forms import TokenForm
from .models import ApiToken
from .serializers import NewTokenSerializer, TokenRequestSerializer, TokenSerializer
from .throttles import SignInThrottle

logger = logging.getLogger("api")


def _tokens_for(user, permission):
    tokens = ApiToken.objects.select_related("user")
    return tokens if user.has_perm(permission) else tokens.filter(user=user)


class TokenList(generics.ListAPIView):
    serializer_class = TokenSerializer

    def get_permissions(self):
        if self.request.method == "POST":
            return [AllowAny()]  # the password (or session) is checked in post()
        return super().get_permissions()

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(SignInThrottle())
        return throttles

    def get_queryset(self):
        """The user's own tokens; all of them for a user who may view anyone's."""
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return _tokens_for(self.request.user, "api.view_apitoken")

    @extend_schema(
        summary="Create a token",
        description="With `username` and `password` (a wrong pair answers 401), or from a signed-in session "
        "(with its CSRF token), which needs neither. The answer holds the key; it is shown only this once.",
        request=TokenRequestSerializer,
        responses={201: NewTokenSerializer},
        auth=[{}, {"cookieAuth": []}],
    )
    def post(self, request):
        data = form_data(request, {"name", "username", "password"})
        user = self._user_of(request, data)
        form = TokenForm(data)
        if not form.is_valid():
            raise form_error(form)
        token, key = ApiToken.issue(user, form.cleaned_data["name"])
        token.key = key  # for the answer only
        logger.info("API token %s (%s) created for %s", token.pk, token.key_start, user.get_username())
        return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _user_of(request, data):
        """The session's user, else the one the username and password name (checked as the sign-in
        page checks them, so lockouts and inactive accounts apply), who must be staff."""
        if isinstance(request.successful_authenticator, SessionAuthentication):
            user = request.user
        else:
            sign_in = AuthenticationForm(
                request._request, data={"username": data.get("username", ""), "password": data.get("password", "")}
            )
            if not sign_in.is_valid():
                refused = sign_in.errors.as_data().get(NON_FIELD_ERRORS)
                if refused:  # both were given, and they do not sign anyone in: 401, not bad input
                    raise NotSignedIn(refused[0].messages[0], code=refused[0].code)
                raise form_error(sign_in)
            user = sign_in.get_user()
        if not user.is_staff:
            raise PermissionDenied(STAFF_ONLY_MESSAGE)
        return user


class TokenDetail(generics.DestroyAPIView):
    serializer_class = TokenSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return _tokens_for(self.request.user, "api.delete_apitoken")

    @extend_schema(summary="Revoke a token", description="Your own; anyone's with the api.delete_apitoken permission.")
    def delete(self, request, *args, **kwargs):
        return super().delete(request, *args, **kwargs)

    def perform_destroy(self, token):
        logger.info(
            "API token %s (%s) of %s revoked by %s",
            token.pk, token.key_start, token.user.get_username(), self.request.user.get_username(),
        )
        token.delete()
