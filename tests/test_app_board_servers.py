"""Two app servers, as behind a load balancer with sticky sessions, sharing one PostgreSQL: a class created on
one, learners on both, and both servers show the same board; a hide on one is gone on the other; the board is
still there after a server restarts."""

from __future__ import annotations

import pytest

from tests.conftest import start_app
from tests.test_app_train import _file, make_zip

pytestmark = pytest.mark.http


@pytest.fixture(scope="module")
def database():
    from tests.postgres import postgres_server

    with postgres_server() as url:
        yield url


def _experiment(client, zip_path) -> None:
    status, *_ = client.predict(_file(zip_path), "your zip", "relu-vs-tanh", 1, "activation", "", 1,
                                api_name="/experiment")  # fmt: skip
    assert "Done" in status


def test_two_servers_on_one_postgresql_show_the_same_board(tmp_path_factory, tmp_path, database):
    from gradio_client import Client

    shared = {"PLAYGROUND_DATABASE_URL": database}
    with start_app(tmp_path_factory, **shared) as (one, _), start_app(tmp_path_factory, **shared) as (two, _):
        teacher = Client(one, verbose=False)
        code, key = teacher.predict("Two servers", api_name="/create_class")
        for n, (server, learner) in enumerate(((one, "ada"), (two, "bo"), (two, "cy"))):
            client = Client(server, verbose=False)
            client.predict(code, learner, api_name="/join_class")
            _experiment(client, make_zip(tmp_path / f"c{n}.zip", per_class=5 + n))
            assert client.predict(code, learner, "experiment", api_name="/publish_result").startswith("Published")
        on_one, on_two = (
            teacher.predict(code, api_name="/board"),
            Client(two, verbose=False).predict(code, api_name="/board"),
        )
        assert on_one == on_two
        assert [e["learner"] for e in on_one["entries"]] == ["ada", "bo", "cy"]
        assert on_one["pooled"][0]["learners"] == 3 and on_one["pooled"][0]["seeds"] == 6
        hidden = on_one["entries"][1]["entry"]
        Client(two, verbose=False).predict(code, key, hidden, api_name="/hide_entry")  # the teacher, on the other
        assert [e["learner"] for e in teacher.predict(code, api_name="/board")["entries"]] == ["ada", "cy"]
        expected = teacher.predict(code, api_name="/board")
    # Both servers stopped; a new one on the same database shows the same board, then the teacher closes it.
    with start_app(tmp_path_factory, **shared) as (again, _):
        client = Client(again, verbose=False)
        assert client.predict(code, api_name="/board") == expected
        rows = client.predict(code, key, "csv", api_name="/export_board").splitlines()
        assert len(rows) == 1 + 4 and rows[0].startswith("entry,learner,kind")  # a row per run and seed
        assert "is closed" in client.predict(code, key, api_name="/close_class")
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="closed by its teacher"):
            client.predict(code, api_name="/board")
        assert client.predict(code, key, "json", api_name="/export_board").startswith("{")  # the teacher's copy
