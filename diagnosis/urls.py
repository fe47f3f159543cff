from django.urls import path

from diagnosis.pages import reading_views, views
from diagnosis.readings import views as report_views

app_name = "diagnosis"
urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<int:pk>/", views.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/edit/", views.patient_edit, name="patient_edit"),
    path("patients/<int:pk>/delete/", views.patient_delete, name="patient_delete"),
    path("upload/", views.upload, name="upload"),
    path("xrays/<int:pk>/", views.xray_detail, name="xray_detail"),
    path("xrays/<int:pk>/image/", views.xray_image, name="xray_image"),
    path("xrays/<int:pk>/reading/", reading_views.reading_save, name="reading_save"),
    path("xrays/<int:pk>/reading/amend/", reading_views.reading_amend, name="reading_amend"),
    path("xrays/<int:pk>/report/", report_views.xray_report, name="xray_report"),
    path("models/<int:pk>/card/", views.model_card, name="model_card"),
    path("models/performance/", report_views.model_performance, name="model_performance"),
]
