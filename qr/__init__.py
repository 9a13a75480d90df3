"""Desk QR codes: signed payloads, QR images and printable posters."""
