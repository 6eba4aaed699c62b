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


if __name__ == "__main__":
    main()
