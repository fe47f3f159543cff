from rest_framework.pagination import PageNumberPagination

from diagnosis.pages.views import PAGE_SIZE


class PagePagination(PageNumberPagination):
    """``?page=n``, as many per page as the pages show."""

    page_size = PAGE_SIZE
