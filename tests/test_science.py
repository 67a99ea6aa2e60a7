"""Science articles: content/science/*.md listed and served publicly, linked from the scenarios."""
from __future__ import annotations

import pytest
from api_helpers import error_of
from conftest import shipped_config

from hub import content


def test_list_is_public_and_complete(client):
    response = client.get("/v1/science")
    assert response.status_code == 200
    items = response.get_json()
    assert [a["slug"] for a in items] == sorted(content.articles())
    assert all(set(a) == {"slug", "title", "tags", "scenario"} and a["title"] for a in items)
    assert any(a["scenario"] is None for a in items)  # general articles too


def test_article_has_sources_and_markdown_body(client):
    article = client.get("/v1/science/metro").get_json()
    assert article["title"] and article["scenario"] == "metro" and article["format"] == "markdown"
    assert article["sources"] and "46.8" in article["body"] and not article["body"].startswith("+++")


@pytest.mark.parametrize("slug", ["nope", "METRO", "metro.md", "..%2Fconfig"])
def test_unknown_article_is_404(client, slug):
    response = client.get(f"/v1/science/{slug}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_scenarios_link_their_article(client):
    scenarios = {s["id"]: s for s in client.get("/v1/scenarios").get_json()}
    assert scenarios["metro"]["science"] == "metro" and scenarios["estatement"]["science"] == "estatement"
    for s in scenarios.values():
        assert client.get(f"/v1/science/{s['science']}").status_code == 200


def test_every_shipped_scenario_has_an_article():
    for sid in shipped_config()["scenarios"]:
        slug = content.article_for_scenario(sid)
        assert slug, f"no article in content/science/ has scenario = {sid!r}"
        assert content.articles()[slug].sources


def test_front_matter_is_checked():
    good = '+++\ntitle = "T"\nsources = ["S"]\n+++\nBody\n'
    article = content.parse_article("ok", good)
    assert article.body == "Body\n" and article.tags == () and article.scenario is None
    for bad in ("no front matter", '+++\ntitle = "T"\n', '+++\ntitle = "T"\n+++\n',
                '+++\ntitle = "T"\nsources = ["S"]\nauthor = "x"\n+++\n', "+++\ntitle = \n+++\n"):
        with pytest.raises(content.ContentError):
            content.parse_article("bad", bad)
    with pytest.raises(content.ContentError):
        content.parse_article("Bad_Slug", good)
