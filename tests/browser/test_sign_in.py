from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


def test_a_manager_signs_in_and_sees_the_team(page: Any, manager_account: User) -> None:
    page.goto("/")
    assert "/accounts/login/" in page.url
    sign_in(page)
    assert page.get_by_role("heading", level=1).is_visible()
    assert page.get_by_text("Chloé Dubois-Maréchal").first.is_visible()


def test_a_wrong_password_is_said_and_the_username_kept(page: Any, manager_account: User) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("camille")
    page.get_by_label("Password").fill("not it")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").is_visible()
    assert page.get_by_label("Username").input_value() == "camille"
