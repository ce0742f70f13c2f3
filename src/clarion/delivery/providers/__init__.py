"""Delivery providers behind one interface, chosen through an explicit registry."""
