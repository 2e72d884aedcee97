"""Logging in to the console app through httpx, as a browser would: the log-in form's
CSRF token first, then the session's token read from each page's forms."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import httpx

from aiguillage.console.people import open_store
from shared.auth import Role
from shared.settings import Settings

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, f"no CSRF token in the page: {html[:300]}"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    """POST the log-in form (not following the redirect): 303 on success."""
    form = await client.get("/connexion")
    return await client.post(
        "/connexion",
        data={"csrf": csrf_of(form.text), "identifiant": login, "mot_de_passe": password},
        follow_redirects=False,
    )


def person(settings: Settings, login: str, name: str, role: Role, actor: str) -> str:
    """A person's account in the console's database (a console process reads the same
    file); returns their password. Callable from an async test: it runs on a loop of
    its own, in a thread."""

    async def add() -> str:
        store = await open_store(settings)
        try:
            return (await store.add(login, name, role, actor))[1]
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(add())).result()
