"""REST Countries ingestion (the seed's ADF country pipeline): raw JSON per country, silver Delta table."""
