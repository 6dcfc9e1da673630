from django.urls import path

from search.api import views

urlpatterns = [
    path("search/", views.SearchApi.as_view(), name="search"),
    path("events/", views.EventApi.as_view(), name="events"),
]
