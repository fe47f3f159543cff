from django.urls import path

app_name = "diagnosis"
urlpatterns = []
