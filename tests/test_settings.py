"""Process settings: bad values named, and the published local passwords kept to the
all-embedded loopback stack."""

from __future__ import annotations

import pytest

from alphafactory.settings import LOCAL_DEFAULT_PASSWORDS, SettingsError, load_settings

EXTERNAL_POSTGRES = {"host": "db.internal", "port": 5432, "embedded": False}


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("ALPHAFACTORY_")]:
        monkeypatch.delenv(name)


def test_the_embedded_stack_uses_the_local_defaults():
    settings = load_settings()
    assert settings.postgres.dsn("app").startswith(
        f"postgresql://alphafactory_app:{LOCAL_DEFAULT_PASSWORDS['app']}@127.0.0.1:15432/"
    )


def test_an_external_postgres_has_no_default_password():
    settings = load_settings(postgres={**EXTERNAL_POSTGRES, "app_password": "s3cret-app"})
    assert ":s3cret-app@db.internal:5432/" in settings.postgres.dsn("app")
    with pytest.raises(SettingsError, match="ALPHAFACTORY_POSTGRES__OWNER_PASSWORD is not set"):
        settings.postgres.dsn("owner")  # `db migrate` never resets a role to the default


@pytest.mark.parametrize("role", sorted(LOCAL_DEFAULT_PASSWORDS))
def test_a_published_default_is_refused_with_any_component_external(role):
    passwords = {f"{r}_password": f"secret-{r}" for r in LOCAL_DEFAULT_PASSWORDS}
    passwords[f"{role}_password"] = LOCAL_DEFAULT_PASSWORDS[role]
    with pytest.raises(SettingsError, match=f"POSTGRES__{role.upper()}_PASSWORD is the local"):
        load_settings(kafka={"bootstrap": "kafka:9092", "embedded": False}, postgres=passwords)


def test_an_embedded_postgres_beside_an_external_broker_needs_its_passwords_set():
    with pytest.raises(SettingsError, match="PASSWORD must be set: kafka is external"):
        load_settings(kafka={"bootstrap": "kafka:9092", "embedded": False})
    passwords = {f"{r}_password": f"secret-{r}" for r in LOCAL_DEFAULT_PASSWORDS}
    settings = load_settings(
        kafka={"bootstrap": "kafka:9092", "embedded": False}, postgres=passwords
    )
    assert settings.postgres.password("admin") == "secret-admin"


def test_a_bad_value_names_its_variable(monkeypatch):
    monkeypatch.setenv("ALPHAFACTORY_KAFKA__BOOTSTRAP", "no-port-here")
    with pytest.raises(SettingsError, match="ALPHAFACTORY_KAFKA__BOOTSTRAP.*HOST:PORT"):
        load_settings()


def test_secrets_stay_out_of_the_settings_repr():
    settings = load_settings(postgres={**EXTERNAL_POSTGRES, "app_password": "s3cret-app"})
    assert "s3cret-app" not in repr(settings) and "s3cret-app" not in str(settings)
