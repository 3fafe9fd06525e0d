"""Which licences let an image into a published DAAD."""

import pytest

from daad.core.licenses import collectable, normalize, publishable


@pytest.mark.parametrize(
    "raw, version, expected",
    [
        ("by-sa", "2.0", "CC-BY-SA-2.0"),
        ("cc0", None, "CC0-1.0"),
        ("pdm", None, "PDM-1.0"),
        ("https://creativecommons.org/licenses/by-nc-sa/4.0/", None, "CC-BY-NC-SA-4.0"),
        ("http://creativecommons.org/publicdomain/zero/1.0/", None, "CC0-1.0"),
        ("CC-BY-4.0", None, "CC-BY-4.0"),
    ],
)
def test_normalize(raw, version, expected):
    assert normalize(raw, version) == expected


def test_publishable_and_collectable():
    assert publishable("CC-BY-4.0") == (True, "")
    assert publishable("CC-BY-NC-SA-4.0")[0]
    assert not publishable("")[0] and "no licence" in publishable("")[1]
    assert not publishable("CC-BY-ND-4.0")[0]
    assert not publishable("terms:magnetic_tile")[0]
    assert not collectable("CC-BY-NC-4.0")[0]
    assert collectable("CC-BY-NC-4.0", allow_noncommercial=True)[0]


def test_most_restrictive_licence():
    from daad.core.licenses import restrictiveness, strictest

    order = ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0",
             "terms:magnetic_tile", ""]
    keys = [restrictiveness(x) for x in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert restrictiveness("MIT") == restrictiveness("CC-BY-4.0") and restrictiveness("CC-BY-2.0") == restrictiveness("CC-BY-4.0")
    assert restrictiveness("some EULA") == restrictiveness("")  # not understood: allows nothing
    assert strictest(["CC-BY-4.0", "CC-BY-NC-SA-4.0", "CC-BY-4.0"]) == 1
    assert strictest(["CC-BY-4.0", "by"]) == 0  # a tie keeps the first
    with pytest.raises(ValueError):
        strictest([])


def test_governing_origin_prefers_the_dataset():
    from daad.core.record import governing_origin

    photo = {"source": "photograph", "origin": "photos:a", "license": "CC0-1.0"}
    web = {"source": "online_search", "origin": "daad_sources", "license": ""}
    ds = {"source": "existing_dataset", "origin": "mvtec_ad", "license": "CC-BY-NC-SA-4.0"}
    assert governing_origin([photo, ds]) == 1
    assert governing_origin([web, ds]) == 1  # an unknown web claim does not override the publisher's licence
    assert governing_origin([photo, web]) == 1  # without a dataset: the most restrictive
