from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

from diagnosis.pages.views import PAGE_SIZE


class PagePagination(PageNumberPagination):
    """``?page=n``, as many per page as the pages show."""

    page_size = PAGE_SIZE

    def get_page_number(self, request, paginator):
        # The schema says a page is a number: an empty one is refused like any other non-number.
        if request.query_params.get(self.page_query_param) == "":
            raise NotFound(self.invalid_page_message.format(page_number="", message="That page number is not an integer"))
        return super().get_page_number(request, paginator)
