"""Sources: connectors that list and fetch documents from where teams keep them (git, a docs site,
Confluence, Notion, Google Drive), and the sync that mirrors them into folders the indexer indexes as
roots. base.py has the shapes every connector shares; registry.py maps a type to its connector."""
