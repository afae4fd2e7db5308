"""`sanzhang simulate`: a generated city and a year of its activity, run through the real services
under virtual time (docs/simulation.md). Nothing here is imported by the services."""
