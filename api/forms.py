from django import forms

from .models import ApiToken


class TokenForm(forms.ModelForm):
    """The name a new token is given."""

    class Meta:
        model = ApiToken
        fields = ["name"]
