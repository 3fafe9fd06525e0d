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
