"""Regenerate the example files (deterministic): ``python examples/data/make_data.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent

PRODUCTS = [
    ("P-100", "Trail Running Shoe", "Footwear", 89.0),
    ("P-101", "Road Running Shoe", "Footwear", 119.0),
    ("P-102", "Hiking Boot", "Footwear", 149.0),
    ("P-200", "Rain Jacket", "Apparel", 129.0),
    ("P-201", "Fleece Pullover", "Apparel", 59.0),
    ("P-202", "Merino Base Layer", "Apparel", 75.0),
    ("P-300", "Daypack 20L", "Equipment", 69.0),
    ("P-301", "Trekking Poles", "Equipment", 49.0),
    ("P-302", "Headlamp", "Equipment", 35.0),
    ("P-303", "Water Filter", "Equipment", 42.0),
]
REGIONS = {
    "Europe": ["Germany", "France", "Spain", "Italy", "Sweden"],
    "North America": ["United States", "Canada", "Mexico"],
    "Asia Pacific": ["Japan", "Australia", "South Korea"],
    "Latin America": ["Brazil", "Chile", "Argentina"],
}


def orders(year: int, n: int, rng: np.random.Generator, first_id: int) -> pd.DataFrame:
    region = rng.choice(list(REGIONS), size=n, p=[0.4, 0.3, 0.2, 0.1])
    country = [rng.choice(REGIONS[r]) for r in region]
    prod = rng.integers(0, len(PRODUCTS), size=n)
    units = rng.integers(1, 6, size=n)
    discount = rng.choice([0.0, 0.0, 0.0, 0.05, 0.1, 0.15], size=n)
    price = np.array([PRODUCTS[i][3] for i in prod]) * (1.0 + 0.04 * (year - 2023))
    days = rng.integers(0, 365, size=n)
    dates = pd.Timestamp(f"{year}-01-01") + pd.to_timedelta(days, unit="D")
    df = pd.DataFrame(
        {
            "order_id": np.arange(first_id, first_id + n),
            "order_date": dates,
            "region": region,
            "country": country,
            "product_id": [PRODUCTS[i][0] for i in prod],
            "product": [PRODUCTS[i][1] for i in prod],
            "category": [PRODUCTS[i][2] for i in prod],
            "units": units,
            "unit_price": price.round(2),
            "discount": discount,
        }
    )
    df["revenue"] = (df.units * df.unit_price * (1 - df.discount)).round(2)
    return df.sort_values("order_date", kind="stable").reset_index(drop=True)


def main() -> None:
    rng = np.random.default_rng(2023)
    o23 = orders(2023, 4000, rng, 100001)
    o24 = orders(2024, 4500, rng, 200001)
    products = pd.DataFrame(PRODUCTS, columns=["product_id", "product", "category", "list_price"])
    with pd.ExcelWriter(HERE / "sales.xlsx", engine="openpyxl") as w:
        o23.to_excel(w, sheet_name="Orders 2023", index=False)
        o24.to_excel(w, sheet_name="Orders 2024", index=False)
        products.to_excel(w, sheet_name="Products", index=False)
    customers = pd.DataFrame(
        {
            "customer": [
                "Müller GmbH",
                "Société Générale Sport",
                "Peña Andina",
                "Åsa Lindqvist",
                "Café Olé",
                "Zoë Brontë",
                "Jürgen Weiß",
                "Łukasz Nowak",
            ],
            "country": [
                "Germany",
                "France",
                "Spain",
                "Sweden",
                "Spain",
                "France",
                "Germany",
                "Germany",
            ],
            "segment": [
                "Retail",
                "Wholesale",
                "Retail",
                "Online",
                "Retail",
                "Online",
                "Wholesale",
                "Online",
            ],
            "credit_limit": [5000.5, 25000.0, 7500.25, 1200.0, 3000.0, 800.0, 15000.0, 2200.0],
            "since": [
                "2019-03-01",
                "2015-07-15",
                "2021-01-10",
                "2022-05-30",
                "2018-11-02",
                "2023-02-14",
                "2016-09-09",
                "2020-04-04",
            ],
        }
    )
    # Semicolon-separated with decimal commas, in Latin-1: what a European Excel export gives.
    text = customers.to_csv(sep=";", index=False, decimal=",")
    (HERE / "customers.csv").write_bytes(text.replace("Łukasz", "Lukasz").encode("latin-1"))


DEPARTMENTS = [
    ("Sales", "Maria Keller", "CC-100", 182_000),
    ("Marketing", "Tom Becker", "CC-200", 96_000),
    ("Engineering", "Aiko Tanaka", "CC-300", 240_000),
    ("Customer Support", "Lena Novak", "CC-400", 71_000),
    ("Finance", "Omar Haddad", "CC-500", 48_000),
    ("HR", "Julia Rossi", "CC-600", 39_000),
]


def budget(rng: np.random.Generator) -> None:
    """budget.xlsx: a finance workbook, planned vs actual spend per department and month."""
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    plan_rows, actual_rows = [], []
    for dept, _head, cc, monthly in DEPARTMENTS:
        for m in months:
            seasonal = 1.0 + 0.08 * np.sin((m.month - 1) / 12 * 2 * np.pi)
            planned = round(monthly * seasonal, -2)
            drift = {"Marketing": 0.12, "Engineering": 0.05, "HR": -0.06}.get(dept, 0.0)
            actual = round(planned * (1 + drift + rng.normal(0, 0.04)), 2)
            plan_rows.append(
                {"month": m, "department": dept, "cost_center": cc, "planned_eur": planned}
            )
            actual_rows.append(
                {
                    "month": m,
                    "department": dept,
                    "cost_center": cc,
                    "actual_eur": actual,
                    "headcount": int(monthly // 9_000 + rng.integers(-1, 2)),
                }
            )
    depts = pd.DataFrame(
        DEPARTMENTS, columns=["department", "head", "cost_center", "monthly_budget_eur"]
    )
    with pd.ExcelWriter(HERE / "budget.xlsx", engine="openpyxl") as w:
        pd.DataFrame(plan_rows).to_excel(w, sheet_name="Budget 2024", index=False)
        pd.DataFrame(actual_rows).to_excel(w, sheet_name="Actuals 2024", index=False)
        depts.to_excel(w, sheet_name="Departments", index=False)


def web_traffic(rng: np.random.Generator) -> None:
    """web_traffic.csv: daily sessions, sign-ups and revenue per channel and device in 2024."""
    days = pd.date_range("2024-01-01", "2024-12-31", freq="D")
    channels = {"Organic": 900, "Paid search": 520, "Social": 380, "Email": 210, "Referral": 140}
    devices = {"desktop": 0.48, "mobile": 0.44, "tablet": 0.08}
    conversion = {"desktop": 0.031, "mobile": 0.017, "tablet": 0.022}
    rows = []
    for day in days:
        weekday = 0.75 if day.day_of_week >= 5 else 1.0
        trend = 1.0 + 0.25 * (day.day_of_year / 366)
        for channel, base in channels.items():
            campaign = 1.6 if channel == "Email" and day.day in (1, 2, 15, 16) else 1.0
            for device, share in devices.items():
                sessions = int(rng.poisson(base * share * weekday * trend * campaign))
                signups = int(rng.binomial(sessions, conversion[device]))
                revenue = round(float(signups * rng.gamma(4.0, 12.0)), 2)
                rows.append(
                    {
                        "date": day.date().isoformat(),
                        "channel": channel,
                        "device": device,
                        "sessions": sessions,
                        "signups": signups,
                        "revenue_usd": revenue,
                    }
                )
    pd.DataFrame(rows).to_csv(HERE / "web_traffic.csv", index=False)


def tickets() -> None:
    """support_tickets.csv: help-desk tickets; some subjects start with = + - @ (as people
    really type them), which is what the exports' formula guard is for."""
    rows = [
        (
            1001,
            "2024-03-01 09:12",
            "Müller GmbH",
            "=SUM(B2:B9) shows #VALUE! after import",
            "high",
            "open",
            35,
        ),
        (
            1002,
            "2024-03-01 10:40",
            "Café Olé",
            "Invoice 2024-118 charged twice",
            "high",
            "closed",
            12,
        ),
        (
            1003,
            "2024-03-02 08:05",
            "Peña Andina",
            "-- urgent -- cannot log in since update",
            "urgent",
            "closed",
            4,
        ),
        (1004, "2024-03-02 14:30", "Zoë Brontë", "+1 for a dark mode", "low", "open", 240),
        (
            1005,
            "2024-03-03 11:00",
            "Jürgen Weiß",
            "@billing please resend the March invoice",
            "medium",
            "closed",
            48,
        ),
        (
            1006,
            "2024-03-04 16:20",
            "Åsa Lindqvist",
            "Export to Excel cuts long names",
            "medium",
            "open",
            95,
        ),
        (
            1007,
            "2024-03-05 09:45",
            "Société Générale Sport",
            '=HYPERLINK("http://example.com") not clickable',
            "low",
            "closed",
            130,
        ),
        (
            1008,
            "2024-03-05 13:15",
            "Lukasz Nowak",
            "Password reset mail never arrives",
            "high",
            "open",
            22,
        ),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "ticket",
            "opened",
            "customer",
            "subject",
            "priority",
            "status",
            "minutes_to_first_reply",
        ],
    )
    frame.to_csv(HERE / "support_tickets.csv", index=False)


def extra_files() -> None:
    """The files the newer notebooks use (without rewriting sales.xlsx and customers.csv)."""
    rng = np.random.default_rng(2024)
    budget(rng)
    web_traffic(rng)
    tickets()


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--extra"]:
        main()
    extra_files()
