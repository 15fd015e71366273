"""The sandbox marketplace: fake Taobao-style and Shopify-style order APIs served by the app
itself, so a pull can be developed, demonstrated and tested end to end without a real shop.

stream.py   the deterministic order stream (seed + clock → orders and their later updates)
taobao.py   TOP router: taobao.trades.sold.increment.get, taobao.trade.fullinfo.get,
            taobao.logistics.offline.send
shopify.py  Admin GraphQL: orders(first, after, query, sortKey, reverse), order(id), shop
graphql.py  the tiny GraphQL reader shopify.py uses
config.py   settings, per-shop configuration and the fault knobs
faults.py   applying the fault knobs
urls.py     the URL tree (mount it at /sandbox/)

Each module's docstring documents the wire shapes it serves. No model, no migration: every
answer is recomputed from the seed and the clock.
"""
