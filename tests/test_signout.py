"""Signing out: only a POST does it; the address typed by hand gets a page with the button."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.helpers import text


def test_the_header_names_who_signs_out(manager_client: Client) -> None:
    assert "Sign out (manager)" in text(manager_client.get("/"))


def test_the_sign_out_address_opened_by_hand_offers_the_button_and_signs_no_one_out(
    manager_client: Client,
) -> None:
    response = manager_client.get(reverse("logout"))
    assert response.status_code == 200
    page = text(response)
    assert "You are signed in as manager." in page
    assert f'<form method="post" action="{reverse("logout")}">' in response.content.decode()
    # Still signed in.
    assert manager_client.get("/").status_code == 200


def test_signing_out_says_so_on_the_sign_in_page(manager_client: Client) -> None:
    response = manager_client.post(reverse("logout"), follow=True)
    assert response.redirect_chain[-1][0] == reverse("login")
    assert "You are signed out." in text(response)
    assert manager_client.get("/").status_code == 302


def test_the_sign_out_address_after_signing_out_says_so(client: Client, manager: User) -> None:
    response = client.get(reverse("logout"))
    assert response.status_code == 200
    assert "You are signed out." in text(response) and "Sign in" in text(response)
