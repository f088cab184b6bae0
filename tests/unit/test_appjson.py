from __future__ import annotations

import json

import pytest

from paas import appjson
from paas.errors import InvalidInput


def test_scripts_and_checks_in_dokkus_shape_are_read_and_round_trip() -> None:
    parsed = appjson.parse(json.dumps({
        "name": "ignored",
        "stack": "debian",
        "scripts": {"dokku": {"predeploy": "python migrate.py"}, "postdeploy": "./warm"},
        "healthchecks": {"web": [
            {"type": "startup", "name": "ready", "path": "/health", "content": "ok",
             "attempts": 4, "wait": 1, "timeout": 2, "initialDelay": 0.5},
            {"type": "liveness", "path": "/alive", "wait": 10},
            {"type": "readiness"},
        ]},
    }))
    assert parsed.stack == "debian"
    assert (parsed.predeploy, parsed.postdeploy) == ("python migrate.py", "./warm")
    [startup] = parsed.checks("web", "startup")
    assert (startup.path, startup.content, startup.attempts, startup.wait, startup.timeout,
            startup.initial_delay) == ("/health", "ok", 4, 1.0, 2.0, 0.5)
    assert startup.label == "startup check 'ready'"
    [readiness] = parsed.checks("web", "readiness")
    assert readiness.path is None and readiness.label == "readiness check 'TCP connect'"
    assert parsed.checks("worker", "startup") == []
    # what a release keeps reads back the same
    assert appjson.load(parsed.to_json()) == parsed


def test_dokku_scripts_win_over_herokus() -> None:
    parsed = appjson.load({"scripts": {"dokku": {"postdeploy": "a"}, "postdeploy": "b"}})
    assert parsed.postdeploy == "a"


def test_nothing_asked_is_an_empty_normalised_form() -> None:
    assert appjson.load({}).to_json() == {}


@pytest.mark.parametrize(("data", "message"), [
    ("[1]", "app.json must hold a JSON object"),
    ("{", "app.json is not valid JSON"),
    ('{"healthchecks": {"web": {"path": "/"}}}', '"healthchecks.web" must be a list'),
    ('{"healthchecks": {"web": [{"type": "sometimes"}]}}',
     '"healthchecks.web[0].type" must be one of startup, liveness, readiness'),
    ('{"healthchecks": {"web": [{"attempts": 0}]}}',
     '"healthchecks.web[0].attempts" must be a whole number from 1 to 100'),
    ('{"healthchecks": {"web": [{"attempts": 2.5}]}}', "must be a whole number"),
    ('{"healthchecks": {"web": [{"path": "health"}]}}', "must be a path starting with /"),
    ('{"healthchecks": {"web": [{"content": "ok"}]}}', 'checks "content" but has no "path"'),
    ('{"healthchecks": {"web": [{"command": ["true"]}]}}', "command checks are not supported"),
    ('{"scripts": {"dokku": {"predeploy": ""}}}', '"scripts.dokku.predeploy" must be a command'),
    ('{"scripts": "x"}', '"scripts" must be an object'),
    ('{"stack": 3}', '"stack" must be a string'),
])
def test_mistakes_name_the_field_and_what_it_should_be(data: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        appjson.parse(data)
    assert message in caught.value.message
