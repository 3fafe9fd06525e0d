"""Which licences let an image into a published DAAD: parsed strictly, unknown otherwise.

The understood forms are the ones real answers carry: Openverse's short name + version
and its `license_url`, Wikimedia Commons' `LicenseShortName` and `LicenseUrl`
extmetadata, Flickr's `flickr.photos.licenses.getInfo` names and URLs. Everything else,
look-alikes first, must come out `unknown` and never be publishable.
"""

import pytest

from daad.core.licenses import UNKNOWN, collectable, info, normalize, publishable

REAL = [
    # Openverse /v1/images/ results: license + license_version, and license_url
    ("by", "2.0", "CC-BY-2.0"),
    ("by-sa", "4.0", "CC-BY-SA-4.0"),
    ("by-nc", "3.0", "CC-BY-NC-3.0"),
    ("by-nd", "2.5", "CC-BY-ND-2.5"),
    ("by-nc-sa", "4.0", "CC-BY-NC-SA-4.0"),
    ("by-nc-nd", "2.0", "CC-BY-NC-ND-2.0"),
    ("cc0", "1.0", "CC0-1.0"),
    ("pdm", "1.0", "PDM-1.0"),
    ("sampling+", "1.0", UNKNOWN),
    ("nc-sampling+", "1.0", UNKNOWN),
    ("https://creativecommons.org/licenses/by/2.0/", None, "CC-BY-2.0"),
    ("https://creativecommons.org/licenses/by-nc-sa/4.0/", None, "CC-BY-NC-SA-4.0"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", None, "CC0-1.0"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", None, "PDM-1.0"),
    ("https://creativecommons.org/licenses/sampling+/1.0/", None, UNKNOWN),
    # Wikimedia Commons extmetadata: LicenseShortName, LicenseUrl
    ("CC BY-SA 4.0", None, "CC-BY-SA-4.0"),
    ("CC BY 2.0", None, "CC-BY-2.0"),
    ("CC BY-SA 2.5", None, "CC-BY-SA-2.5"),
    ("CC BY 3.0 de", None, "CC-BY-3.0"),
    ("CC BY-SA 3.0 igo", None, "CC-BY-SA-3.0"),
    ("CC0", None, "CC0-1.0"),
    ("Public domain", None, "PDM-1.0"),
    ("GFDL", None, UNKNOWN),
    ("CC BY-SA 3.0,2.5,2.0,1.0", None, UNKNOWN),
    ("Attribution", None, UNKNOWN),
    ("Copyrighted free use", None, UNKNOWN),
    ("https://creativecommons.org/licenses/by-sa/4.0", None, "CC-BY-SA-4.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0/deed.en", None, "CC0-1.0"),
    ("https://creativecommons.org/licenses/by/3.0/de/deed.en", None, "CC-BY-3.0"),
    ("https://creativecommons.org/licenses/by-sa/3.0/legalcode", None, "CC-BY-SA-3.0"),
    ("//creativecommons.org/licenses/by-sa/2.0/deed.pt_BR", None, "CC-BY-SA-2.0"),
    ("http://www.gnu.org/copyleft/fdl.html", None, UNKNOWN),
    ("cc-by-sa-4.0", None, "CC-BY-SA-4.0"),
    # Flickr flickr.photos.licenses.getInfo: names (the URL is used when there is one)
    ("All Rights Reserved", None, UNKNOWN),
    ("Attribution License", None, UNKNOWN),
    ("No known copyright restrictions", None, UNKNOWN),
    ("https://www.flickr.com/commons/usage/", None, UNKNOWN),
    ("United States Government Work", None, UNKNOWN),
    ("http://www.usa.gov/copyright.shtml", None, UNKNOWN),
    ("Public Domain Dedication (CC0)", None, "CC0-1.0"),
    ("Public Domain Mark", None, "PDM-1.0"),
    ("CC BY 4.0", None, "CC-BY-4.0"),
    ("CC BY-NC-SA 2.0", None, "CC-BY-NC-SA-2.0"),
    # SPDX ids, ours and the datasets'
    ("CC-BY-4.0", None, "CC-BY-4.0"),
    ("cc-by-nc-sa-4.0", None, "CC-BY-NC-SA-4.0"),
    ("CC-BY-SA-3.0-DE", None, "CC-BY-SA-3.0"),
    ("CC0-1.0", None, "CC0-1.0"),
    ("MIT", None, "MIT"),
    ("apache-2.0", None, "Apache-2.0"),
    ("terms:magnetic_tile", None, "terms:magnetic_tile"),
    ("", None, ""),
    (None, None, ""),
]

HOSTILE = [
    ("CC-BY-4.0-NC", None),
    ("CC-BY-4.0-ND", None),
    ("CC-BY-SA-4.0-NC", None),
    ("CC-BY-4.0-SA", None),  # SA is not a port (and 4.0 was never ported)
    ("CC-BY-3.0-NC", None),
    ("CC-BY-4.0-DE", None),
    ("CC-BY-SA-NC-4.0", None),  # elements out of order
    ("CC-BY-ND-SA-4.0", None),
    ("CC-BY-9.9", None),
    ("CC BY 4.0 de", None),
    ("CC-BY-2.1", None),
    ("All rights reserved. Not https://creativecommons.org/licenses/by/4.0", None),
    ("https://creativecommons.org/licenses/by/4.0/ (but not for commercial use)", None),
    ("see https://creativecommons.org/licenses/by/4.0/", None),
    ("https://creativecommons.org.evil.example/licenses/by/4.0/", None),
    ("https://evil.example/creativecommons.org/licenses/by/4.0/", None),
    ("https://creativecommons.org/licenses/by/4.0/../../by-nc/4.0/", None),
    ("https://creativecommons.org/licenses/by/9.9/", None),
    ("https://creativecommons.org/licenses/by/4.0/?nc=1", None),
    ("CC-BY-4.0\nMIT", None),
    ("CC-BY-4.0\u200b", None),
    ("\uff23\uff23-BY-4.0", None),  # fullwidth CC
    ("MIT OR GPL-3.0", None),
    ("CC-BY-4.0 AND CC-BY-NC-4.0", None),
    ("cc-by", None),
    ("by", None),
    ("by", "4.0-NC"),
    ("by", 4.0),
    (42, None),
    (["by"], None),
    ({"id": "CC-BY-4.0"}, None),
    ("terms:../../etc", None),
]


@pytest.mark.parametrize("raw, version, expected", REAL)
def test_real_licence_strings(raw, version, expected):
    assert normalize(raw, version) == expected


@pytest.mark.parametrize("raw, version", HOSTILE)
def test_look_alikes_are_unknown_and_never_publishable(raw, version):
    assert normalize(raw, version) == UNKNOWN
    ok, why = publishable(raw)  # type: ignore[arg-type]
    assert not ok and "unknown" in why
    assert not collectable(raw, allow_noncommercial=True)[0]  # type: ignore[arg-type]


def test_publishable_and_collectable():
    assert publishable("CC-BY-4.0") == (True, "")
    assert publishable("CC-BY-NC-SA-4.0")[0]
    assert not publishable("")[0] and "no licence" in publishable("")[1]
    assert not publishable("CC-BY-ND-4.0")[0]
    assert not publishable("terms:magnetic_tile")[0]
    assert not collectable("CC-BY-NC-4.0")[0]
    assert collectable("CC-BY-NC-4.0", allow_noncommercial=True)[0]
    assert info("CC-BY-NC-SA-3.0").noncommercial and info("CC-BY-NC-SA-3.0").sharealike
    assert "'GFDL' is not understood" in info("GFDL").reason


def test_most_restrictive_licence():
    from daad.core.licenses import restrictiveness, strictest

    order = ["CC0-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0", "CC-BY-NC-ND-4.0",
             "terms:magnetic_tile", ""]
    keys = [restrictiveness(x) for x in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert restrictiveness("MIT") == restrictiveness("CC-BY-4.0") and restrictiveness("CC-BY-2.0") == restrictiveness("CC-BY-4.0")
    assert restrictiveness("some EULA") == restrictiveness("")  # not understood: allows nothing
    assert strictest(["CC-BY-4.0", "CC-BY-NC-SA-4.0", "CC-BY-4.0"]) == 1
    assert strictest(["CC-BY-4.0", "CC-BY-2.0"]) == 0  # a tie keeps the first
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
