"""PAKN core: dialogs, domain services, calendar, i18n, scheduler, composition root and CLI."""
