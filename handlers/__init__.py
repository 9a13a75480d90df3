"""Telegram-facing handlers and transport for the PAKN bot."""
