"""The result checks: the question's wording against the result's shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataask_jupyter.checks import (
    NONE_RESULT,
    Expectation,
    error_hint,
    expect,
    feedback,
    is_missing,
)


@pytest.mark.parametrize(
    ("question", "kind", "count"),
    [
        ("Is our average employee older than 35?", "boolean", None),
        ("Are there any duplicate orders?", "boolean", None),
        ("Did any region lose money in 2023? Answer True or False", "boolean", None),
        ("If I move from Iceland to Singapore, would my rent go up?", "boolean", None),
        ("Is there a list of products I can see?", None, None),  # "list": not yes/no
        ("List the 3 countries where rent is cheapest.", "list", 3),
        ("List the top five products by revenue", "list", 5),
        ("List the lowest 5 monthly incomes.", "list", 5),
        ("List the first (by row order) 2 regions.", "list", 2),
        ("What are the three highest totals in one season?", "list", 3),
        ("List all the different regions.", "list", None),
        ("List the countries ranked 10th to 15th.", "list", 6),
        ("List the prices of the items ranked between the 1st and the 4th", "list", 4),
        ("List the regions present in the first 4 rows.", "list", None),
        ("List revenue per region", None, None),  # a breakdown, not a list
        ("Top 3 customers by revenue", "list", 3),
        ("What is the mean price of the top 10 products?", "number", None),
        ("Which region has the highest revenue?", "label", None),
        ("Who sold the most?", "label", None),
        ("In which country is rent cheapest?", "label", None),
        ("How many orders were returned?", "number", None),
        ("What is the average discount?", "number", None),
        ("How many orders per region?", None, None),
        ("Plot revenue by month", None, None),
        ("Show me the data", None, None),
        ("Do the tasks", None, None),
        ("Do we sell in Peru?", "boolean", None),
    ],
)
def test_expect(question: str, kind: str | None, count: int | None) -> None:
    e = expect(question)
    assert (e.kind, e.count) == (kind, count)


def test_at_most_and_hints() -> None:
    e = expect("List the first 3 parent values. If there are less than 3 list as many as there are")
    assert e == Expectation("list", 3, True)
    assert e.hint() == "`result` must be a Python list of at most 3 values, computed from df."
    assert expect("Is it sunny?").hint() == "`result` must be one True/False, computed from df."
    assert Expectation().hint() is None


def test_missing_values() -> None:
    for value in (None, float("nan"), np.float64("nan"), pd.NaT, [], (), pd.DataFrame(),
                  pd.Series([], dtype=float), [float("nan")], pd.Series([None, None])):  # fmt: skip
        assert is_missing(value), value
    for value in (0, False, "", [0], pd.Series([1]), "nan-free"):
        assert not is_missing(value), value


FRAME = pd.DataFrame(
    {
        "JobRole": ["Sales Executive", "Sales Representative", "Manager", "Research Scientist"],
        "Department": ["Sales", "Sales", "R&D", "R&D"],
        "Years": [5, 7, 20, 3],
        "season": ["2012-13", "2013-14", "2012-13", "2013-14"],
    }
)


def test_none_gets_the_none_message() -> None:
    assert feedback("anything", None, "result = fig.show()") == NONE_RESULT


def test_empty_result_names_the_real_values() -> None:
    code = "result = df[df['JobRole'] == 'Sales']['Years'].mean()"
    text = feedback("What is the average of Years for sales staff?", float("nan"), code, FRAME)
    assert text is not None and "empty or missing" in text
    assert 'Column "JobRole" has no value "Sales"' in text
    assert '"Sales Executive"' in text and '"Sales Representative"' in text
    # a season written differently in the data
    code = 'result = df[df.season == "2013"]["Years"].max()'
    text = feedback("Most years in the season that started in 2013?", np.nan, code, FRAME)
    assert text is not None and '"2013-14"' in text
    # .isin and .str.contains are read too; a value that exists gives no hint
    code = (
        "x = df[df['Department'].isin(['Sales', 'Ops'])]\n"
        "result = x[x.JobRole.str.contains('Boss')]"
    )
    text = feedback("Which staff?", pd.DataFrame(), code, FRAME)
    assert text is not None and "Department" in text and '"Ops"' in text and "JobRole" in text


def test_a_value_the_column_never_holds_is_a_misfit_even_when_the_result_is_not_empty() -> None:
    q = "Are there more sales executives than R&D staff?"
    code = "result = (df.JobRole == 'Sales Exec').sum() > (df['Department'] == 'Development').sum()"
    text = feedback(q, False, code, FRAME)
    assert text is not None and "never holds" in text
    assert 'no value "Sales Exec"' in text and '"Sales Executive"' in text
    assert 'no value "Development"' in text
    right = "result = (df.JobRole == 'Sales Executive').sum() > (df.Department == 'R&D').sum()"
    assert feedback(q, False, right, FRAME) is None
    # a value the question names itself (asked about, so it may be absent): no opinion
    q = "How many staff worked in the 2010-11 season?"
    assert feedback(q, 0, "result = (df.season == '2010-11').sum()", FRAME) is None
    # substrings, numbers and columns the code rewrites first are not whole values of df
    code = "result = df.JobRole.str.contains('Sales').sum()"
    assert feedback("How many in sales?", 2, code, FRAME) is None
    assert feedback("Any 4 years?", False, "result = (df.Years == 4).any()", FRAME) is None
    code = "df['JobRole'] = df['JobRole'].str.lower()\nresult = (df.JobRole == 'manager').sum()"
    assert feedback("How many managers?", 1, code, FRAME) is None


def test_empty_result_without_frame_or_literals() -> None:
    text = feedback("total?", [], "result = []")
    assert text is not None and "empty" in text and "Column" not in text


def test_yes_no_question() -> None:
    q = "Did any player not miss any free throws?"
    text = feedback(q, pd.Series([False, True, False]), "result = df.FTA == 0")
    assert text is not None and ".any() or .all()" in text and "one per row" in text
    text = feedback(q, ["Singapore"], "")
    assert text is not None and "one True/False" in text
    assert feedback(q, True, "") is None
    assert feedback(q, np.bool_(False), "") is None
    assert feedback(q, [True], "") is None  # one answer in a list is still one answer
    assert feedback(q, pd.Series([np.bool_(False)]), "") is None


def test_which_question_with_a_number() -> None:
    text = feedback("Which team had the most rebounds?", 1247, "result = df.REB.max()")
    assert text is not None and "idxmax" in text
    assert feedback("Which team had the most rebounds?", "GSW", "") is None
    assert feedback("Which year had the most sales?", 2019, "") is None  # a number is a label here


def test_list_count() -> None:
    q = "List the 3 countries where I would pay the most for groceries."
    text = feedback(q, ["Switzerland"], "")
    assert text is not None and "asks for 3 values" in text and "nlargest(3" in text
    assert feedback(q, ["a", "b", "c"], "") is None
    assert feedback(q, pd.DataFrame({"c": ["a", "b", "c"]}), "") is None
    assert feedback(q, "Switzerland", "") is not None
    q = "List the first 3 values. If there are fewer than 3, list as many as there are."
    assert feedback(q, ["a", "b"], "") is None
    assert feedback(q, ["a", "b", "c", "d"], "") is not None
    # the top 5 of a column that holds 3 values: all 3 of them
    frame = pd.DataFrame({"travel": ["rarely", "often", "never", "rarely"], "n": [1, 2, 3, 4]})
    q = "List the top 5 travel categories."
    assert feedback(q, ["rarely", "often", "never"], "", frame) is None
    assert feedback(q, ["rarely", "often"], "", frame) is not None


def test_no_opinion_no_feedback() -> None:
    assert feedback("Show me the data", FRAME, "result = df") is None
    assert feedback("Summarise the table", 3, "") is None


def test_a_stated_answer_is_sent_back() -> None:
    text = feedback("Which gender is most satisfied?", "Female", "result = 'Female'", FRAME)
    assert text is not None and "never reads df" in text
    assert feedback("Which gender?", "Female", "result = df.g.mode()[0]", FRAME) is None
    assert feedback("hi", 1, "result = 1") is None  # no frame: nothing to compare with


def test_a_number_as_text_is_still_a_number() -> None:
    code = "result = str(round(df.x.mean()))"
    assert feedback("Which travel category earns most?", "6620", code) is not None
    assert feedback("Which travel category earns most?", "Travel_Rarely", code) is None


def test_empty_result_points_at_the_column_holding_the_value() -> None:
    code = "result = df[df['JobRole'] == 'Sales']['Years'].mean()"
    text = feedback("Average years in sales?", float("nan"), code, FRAME)
    assert text is not None and '"Sales" is a value of column "Department"' in text


def test_error_hints() -> None:
    wide = pd.DataFrame(columns=["Cost of Living Plus Rent Index", "Country", "BLK", "MIN", "GP"])
    attr = "AttributeError: 'DataFrame' object has no attribute 'Cost_of_Living_Plus_Rent_Index'"
    assert error_hint(attr, "", wide) == (
        'There is no column "Cost_of_Living_Plus_Rent_Index"; '
        'did you mean df["Cost of Living Plus Rent Index"]?'
    )
    assert error_hint("KeyError: 'country'", "", wide) == (
        'There is no column "country"; did you mean df["Country"]?'
    )
    assert "no column" in (error_hint("KeyError: 'BLOCKS'", "", wide) or "")
    text = error_hint("KeyError: 8", 'result = df[df["MIN"].idxmax()]["GP"]', wide)
    assert text is not None and "df.loc[" in text
    assert error_hint("KeyError: 8", "result = df.loc[8]", wide) is None
    assert error_hint("ZeroDivisionError: division by zero", "", wide) is None
    assert error_hint("KeyError: 'x'", "", None) is None


def test_row_labels_are_not_values() -> None:
    frame = pd.DataFrame({"PLAYER": list("abcdef"), "STL": [5, 9, 1, 7, 3, 2]})
    code = 'result = df["STL"].nlargest(3).index.tolist()'
    text = feedback("List the three players with the most steals.", [1, 3, 0], code, frame)
    assert text is not None and "row numbers of df (1, 3, 0)" in text
    code = 'result = df["STL"].idxmax()'
    assert "row numbers" in (feedback("Which player stole most?", 1, code, frame) or "")
    # values from an index that is not df's rows are fine
    code = 'result = df["STL"].value_counts().head(3).index.tolist()'
    assert feedback("List the 3 most common steal counts", [5, 9, 1], code, frame) is None
    code = 'result = df.loc[df["STL"].idxmax(), "PLAYER"]'
    assert feedback("Which player stole most?", "b", code, frame) is None


def test_which_noun_decides_whether_a_number_is_a_label() -> None:
    assert feedback("Which player had the most steals in a season?", 808, "") is not None
    assert feedback("Which season had the most steals?", 2013, "") is None
    assert feedback("Who scored most?", 12, "") is not None


def test_the_most_common_thing_is_a_label_unless_a_number_names_it() -> None:
    frame = pd.DataFrame({"Parent": ["483", "90", "483"], "Name": ["a", "b", "c"], "n": [1, 2, 3]})
    assert feedback("What is the most common category?", 3, "", frame) is not None
    assert feedback("What is the most common age?", 34, "", frame) is None
    assert feedback("What is the most frequent number of rooms?", 3, "", frame) is None
    # a number that is a value of a text column is a label (an ID)
    assert feedback("What is the most common unique parent?", "483", "", frame) is None
    assert feedback("What is the most common unique parent?", 483, "", frame) is None
    assert "True/False" in (feedback("Which gender is most satisfied?", True, "", frame) or "")


def test_counts_are_not_the_values_counted() -> None:
    counts = pd.Series(["x", "y", "x", "z"], name="role").value_counts()
    text = feedback("List the top 2 most common roles.", counts.head(2), "", None)
    assert text is not None and ".index.tolist()" in text
    assert feedback("What is the most common role?", counts.head(1), "", None) is not None
    assert feedback("List the counts of the 2 most common roles.", counts.head(2), "", None) is None
    assert feedback("List the top 2 most common roles.", ["x", "y"], "", None) is None
    assert feedback("List the 2 highest scores.", pd.Series([3, 2], name="score"), "", None) is None
    # the counts as a list: told by the code, which counts and never takes the index
    code = "result = df['role'].value_counts().head(2).tolist()"
    assert feedback("List the top 2 most common roles.", [2, 1], code, None) is not None
    code = "c = df['age'].value_counts()\nresult = c.head(2).index.tolist()"
    assert feedback("List the 2 most common ages.", [35, 34], code, None) is None


def test_second_means_second() -> None:
    q = "Which country has the second-highest rent?"
    assert "second" in (feedback(q, "Bermuda", 'result = df.loc[df.r.idxmax(), "c"]') or "")
    assert feedback(q, "Bermuda", 'result = df.nlargest(2, "r").iloc[1]["c"]') is None
    assert feedback(q, "Bermuda", 'result = df.sort_values("r").c.iloc[-2]') is None
    assert feedback("Revenue in the second half?", 3.5, "result = df.r.sum()") is None
    q = "Is the Bahamas ranked second?"
    assert feedback(q, True, "result = df.loc[df.c == 'Bahamas', 'Rank'].iloc[0] == 2") is None
    assert feedback(q, True, "result = df.loc[df.Rank.idxmin(), 'c'] == 'Bahamas'") is not None


def test_empty_selection_errors_get_the_value_hints() -> None:
    code = "result = df[df['season'] == '2013']['JobRole'].iloc[0]"
    text = error_hint("IndexError: single positional indexer is out-of-bounds", code, FRAME)
    assert text is not None and text.startswith("The selection was empty")
    assert '"2013-14"' in text
    text = error_hint("ValueError: attempt to get argmax of an empty sequence", "x", FRAME)
    assert text == "The selection was empty: a filter matched no rows."


def test_direction_of_the_question() -> None:
    q = "List the amounts of the lowest 5 monthly incomes."
    text = feedback(q, [9, 8, 7, 6, 5], 'result = df["inc"].nlargest(5).tolist()')
    assert text is not None and "nsmallest" in text
    assert feedback(q, [1, 2, 3, 4, 5], 'result = df["inc"].nsmallest(5).tolist()') is None
    q = "Which country has the highest rent?"
    assert "nlargest" in (feedback(q, "X", "result = df.loc[df.r.idxmin(), 'c']") or "")
    q = "Which has the highest and the lowest rent?"  # both: no opinion
    assert feedback(q, "X", "result = df.loc[df.r.idxmin(), 'c']") is None


def test_names_expected_not_numbers() -> None:
    frame = pd.DataFrame({"PLAYER": ["a", "b"], "BLK": [3, 4], "Country": ["x", "y"]})
    q = "List the three players with the highest blocks in a single season."
    text = feedback(q, [269, 254, 242], 'result = df["BLK"].nlargest(3).tolist()', frame)
    assert text is not None and 'column "PLAYER" holds them' in text
    assert feedback(q, ["a", "b", "c"], "result = df.PLAYER.tolist()", frame) is None
    q = "In which country is BLK highest?"
    assert feedback(q, 4, "result = df.BLK.max()", frame) is not None
    q = "List the three highest BLK values."
    assert feedback(q, [4, 3, 1], "result = df.BLK.nlargest(3).tolist()", frame) is None


def test_numeric_looking_ids_of_a_text_column_are_names() -> None:
    frame = pd.DataFrame({"Parent": ["483", "90", "SPS"], "n": [1, 2, 3]})
    code = 'result = df.groupby("Parent")["n"].sum().nlargest(2).index.tolist()'
    assert feedback("List the 2 parents with the most n", ["483", "90"], code, frame) is None
    assert feedback("List the 2 parents with the most n", [3, 2], code, frame) is not None


def test_rank_one_is_the_top() -> None:
    q = "What is the Rent Index of the top-ranked country?"
    text = feedback(q, 2.8, 'result = df.loc[df["Rank"].idxmax(), "Rent Index"]')
    assert text is not None and "smallest rank" in text
    assert feedback(q, 46.5, 'result = df.loc[df["Rank"].idxmin(), "Rent Index"]') is None
    q = "Mean index of the top 10 countries by rank?"
    assert feedback(q, 3.1, 'result = df.nlargest(10, "Rank")["I"].mean()') is not None
    q = "List the names of the top 5 ranked countries."
    code = "result = df.sort_values(by='Rank', ascending=False).head(5)['Country'].tolist()"
    assert feedback(q, list("abcde"), code) is not None
    code = "result = df.sort_values('Rank').head(5)['Country'].tolist()"
    assert feedback(q, list("abcde"), code) is None


def test_closest_means_the_smallest_absolute_difference() -> None:
    q = "Which country has a Groceries Index closest to 80?"
    code = 'result = df.loc[df["G"].abs() == df["G"].abs().min(), "Country"].iloc[0]'
    text = feedback(q, "X", code)
    assert text is not None and '(df["X"] - 80).abs().idxmin()' in text
    assert feedback(q, "X", 'result = df.loc[(df["G"] - 80).abs().idxmin(), "Country"]') is None
    q = "List the 5 Local Purchasing Power Index values closest to 100."
    code = "result = df['L'].sort_values().iloc[-5:].tolist()"
    assert "nsmallest(5)" in (feedback(q, [1, 2, 3, 4, 5], code) or "")
    code = "result = df.loc[(df['L'] - 100).abs().nsmallest(5).index, 'L'].tolist()"
    assert feedback(q, [1, 2, 3, 4, 5], code) is None
    assert feedback("Which shop is closest to the station?", "A", "result = df.s[0]") is None


def test_a_single_season_is_not_summed_across_seasons() -> None:
    q = "List the top 4 points achieved by a single player in one season."
    code = 'result = df.groupby("PLAYER")["PTS"].sum().nlargest(4).tolist()'
    text = feedback(q, [9, 8, 7, 6], code)
    assert text is not None and "across seasons" in text
    # grouped by the season too, or the rows themselves: fine
    code = 'result = df.groupby(["PLAYER", "year"])["PTS"].sum().nlargest(4).tolist()'
    assert feedback(q, [9, 8, 7, 6], code) is None
    assert feedback(q, [9, 8, 7, 6], 'result = df["PTS"].nlargest(4).tolist()') is None
    q = "Which store sold the most in a given month?"
    code = 'result = df.groupby(by=["Store"]).agg({"qty": "sum"})["qty"].idxmax()'
    assert feedback(q, "S1", code) is not None
    assert feedback(q, "S1", code.replace('["Store"]', '["Store", "Date"]')) is None
    # no single unit asked about: grouping and summing is the question
    q = "Which player scored the most points overall?"
    assert feedback(q, "P", 'result = df.groupby("PLAYER")["PTS"].sum().idxmax()') is None


def test_any_is_not_all() -> None:
    q = "Did any player not miss any free throws in a single season?"
    text = feedback(q, False, 'result = (df["FTA"] == df["FTM"]).all()')
    assert text is not None and ".any()" in text
    assert feedback(q, True, 'result = (df["FTA"] == df["FTM"]).any()') is None
    assert feedback("Are all names unique?", True, "result = df.n.notna().all()") is None


def test_precedence_and_alignment_hints() -> None:
    err = "TypeError: Cannot perform 'rand_' with a dtyped [uint8] array and scalar of type [bool]"
    assert "parentheses" in (error_hint(err, "", FRAME) or "")
    err = "ValueError: Can only compare identically-labeled Series objects"
    assert ".iloc[0]" in (error_hint(err, "", FRAME) or "")


def test_undefined_names() -> None:
    text = error_hint("NameError: name 'result' is not defined", "px.line(result)", FRAME)
    assert text is not None and "`prev`" in text
    text = error_hint("NameError: name 'data' is not defined", "data.x", FRAME)
    assert text is not None and "df, dfs, prev" in text


def test_a_chart_question_wants_a_figure() -> None:
    text = feedback("plot that as a line chart", FRAME, "result = prev")
    assert text is not None and "plotly figure" in text
    import plotly.express as px

    fig = px.line(FRAME, x="season", y="Years")
    assert feedback("plot that as a line chart", fig, "result = px.line(prev)") is None
