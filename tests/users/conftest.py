"""The console's browser fixtures (``tests/ui/conftest.py``), for the administration page's
tests here: one definition, used by name."""

from tests.ui.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    browser,
    console,
    screenshot_dir,
    signed_in_page,
)
