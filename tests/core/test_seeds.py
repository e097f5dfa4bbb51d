import pytest

from datasetgan.core.errors import UserError
from datasetgan.core.seeds import parse_seeds


def test_ranges_and_lists():
    assert parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert parse_seeds("7") == [7]


@pytest.mark.parametrize("bad", ["", "a", "3-1", "1,,2", "-1", str(2**32)])
def test_bad_seeds_name_the_flag(bad):
    with pytest.raises(UserError, match="--seeds"):
        parse_seeds(bad)
