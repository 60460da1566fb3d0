import numpy as np
import pandas as pd
import pytest

from airflow_ml_provider.config import SliceConfig
from airflow_ml_provider.core.slices import OVERALL, slice_families, too_many_slices


def specs(*raw):
    return [SliceConfig.model_validate(r) for r in raw]


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "district": ["mitte", "pankow", "mitte", None, "pankow", "mitte"],
            "vehicle_type": ["bike", "car", "car", "bike", "car", "bike"],
            "pickup_hour": [7.0, 12.0, 23.0, np.nan, 5.0, 30.0],
            "distance_km": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )


def masks(family):
    return {slice_id: family.codes == i for i, slice_id in enumerate(family.ids)}


def test_overall_comes_first_and_holds_every_row(frame):
    (overall,) = slice_families(frame, [])
    assert overall.ids == (OVERALL,)
    assert overall.rows().tolist() == [len(frame)]


def test_column_slices_one_per_value_missing_values_in_none(frame):
    _, family = slice_families(frame, specs({"column": "district"}))
    assert family.ids == ("district=mitte", "district=pankow")
    assert family.codes.dtype == np.intp
    assert family.codes.tolist() == [0, 1, 0, -1, 1, 0]
    assert family.rows().tolist() == [3, 2]


def test_crossed_columns_list_only_pairs_present(frame):
    _, family = slice_families(frame, specs({"columns": ["district", "vehicle_type"]}))
    assert family.label == "district x vehicle_type"
    assert family.ids == (
        "district=mitte & vehicle_type=bike",
        "district=mitte & vehicle_type=car",
        "district=pankow & vehicle_type=car",
    )
    got = masks(family)
    assert got["district=mitte & vehicle_type=bike"].tolist() == [True, False, False, False, False, True]
    assert got["district=pankow & vehicle_type=car"].tolist() == [False, True, False, False, True, False]


def test_bins_with_labels_are_half_open_and_listed_even_when_empty(frame):
    _, family = slice_families(
        frame,
        specs(
            {"bins": {"column": "pickup_hour", "edges": [0, 6, 10, 16, 20, 24], "labels": ["n", "m", "d", "e", "l"]}}
        ),
    )
    assert family.ids == tuple(f"pickup_hour_band={x}" for x in ["n", "m", "d", "e", "l"])
    # 7 -> m, 12 -> d, 23 -> l, NaN -> none, 5 -> n, 30 (beyond the last edge) -> none
    assert family.codes.tolist() == [1, 2, 4, -1, 0, -1]
    assert family.rows().tolist() == [1, 1, 1, 0, 1]


def test_bins_without_labels_are_named_by_their_interval(frame):
    _, family = slice_families(frame, specs({"bins": {"column": "distance_km", "edges": [0, 2.5, 10]}}))
    assert family.ids == ("distance_km=[0,2.5)", "distance_km=[2.5,10)")
    assert family.rows().tolist() == [2, 4]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"district": "mitte"}, [True, False, True, False, False, True]),
        ({"district": {"in": ["pankow", "nowhere"]}}, [False, True, False, False, True, False]),
        ({"pickup_hour": {"gte": 7, "lt": 23}}, [True, True, False, False, False, False]),
        ({"pickup_hour": {"gt": 7, "lte": 23}}, [False, True, True, False, False, False]),
        ({"district": "mitte", "vehicle_type": ["bike"]}, [True, False, False, False, False, True]),
    ],
)
def test_where_conditions_all_hold_and_missing_values_never_match(frame, where, expected):
    _, family = slice_families(frame, specs({"name": "chosen", "where": where}))
    assert family.ids == ("chosen",)
    assert (family.codes == 0).tolist() == expected


def test_missing_column_names_the_column_and_the_slice(frame):
    with pytest.raises(ValueError, match=r"evaluation.slices\[1\] \(rush\).*'hour'.*not in the eval data"):
        slice_families(frame, specs({"column": "district"}, {"name": "rush", "where": {"hour": [7, 8]}}))


def test_numeric_slice_on_text_column_is_explained(frame):
    with pytest.raises(ValueError, match="needs numbers in column 'district'"):
        slice_families(frame, specs({"bins": {"column": "district", "edges": [0, 1]}}))


def test_duplicate_slice_ids_are_refused(frame):
    with pytest.raises(ValueError, match="'district=mitte' comes from both"):
        slice_families(frame, specs({"column": "district"}, {"column": "district"}))


def test_integer_valued_floats_get_integer_ids():
    frame = pd.DataFrame({"zone": [1.0, 2.0, 1.0], "flag": [True, False, True]})
    _, zone, flag = slice_families(frame, specs({"column": "zone"}, {"column": "flag"}))
    assert zone.ids == ("zone=1", "zone=2")
    assert flag.ids == ("flag=False", "flag=True")


def test_categorical_columns_are_coded_like_strings():
    frame = pd.DataFrame({"district": pd.Categorical(["b", "a", "b"], categories=["b", "a", "z"])})
    _, family = slice_families(frame, specs({"column": "district"}))
    assert dict(zip(family.ids, family.rows().tolist(), strict=True)) == {"district=a": 1, "district=b": 2}


def test_a_column_with_too_many_values_is_refused_naming_it():
    """Ten thousand distinct districts would be a 10,000-row report and 10,000 tests: refused, naming the column."""
    frame = pd.DataFrame({"district": [f"d{i}" for i in range(10_000)], "vehicle_type": ["car", "bike"] * 5_000})
    assert too_many_slices(frame, specs({"column": "district"}, {"column": "vehicle_type"})) == [(["district"], 10_000)]
    with pytest.raises(ValueError, match=r"evaluation.slices\[0\] \(district\): 'district' has 10,000 distinct values"):
        slice_families(frame, specs({"column": "district"}))
    with pytest.raises(ValueError, match="'district' x 'vehicle_type' has 10,000 distinct pairs of values"):
        slice_families(frame, specs({"columns": ["district", "vehicle_type"]}))
