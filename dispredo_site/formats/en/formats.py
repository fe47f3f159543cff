"""Date formats for every English locale (en, en-gb, ...): the values set in settings.py.

Django 5 always localises, and a locale's own formats win over the settings; a module found
through FORMAT_MODULE_PATH wins over Django's, so this one makes the settings apply.
"""

from django.conf import settings

DATE_FORMAT = settings.DATE_FORMAT
DATETIME_FORMAT = settings.DATETIME_FORMAT
SHORT_DATE_FORMAT = settings.SHORT_DATE_FORMAT
SHORT_DATETIME_FORMAT = settings.SHORT_DATETIME_FORMAT
TIME_FORMAT = settings.TIME_FORMAT
DATE_INPUT_FORMATS = settings.DATE_INPUT_FORMATS
