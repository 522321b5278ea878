"""moto_server, with DynamoDB transactions that undo only their own writes.

moto 5.2 snapshots every table a TransactWriteItems names (a deep copy of the whole table) and,
when a condition fails, puts the snapshot back. The server is threaded, so every write other
requests made to those tables while the copy was taken and the transaction ran is undone with
it: under the test suite's load a 409 in one test lost another test's events, leases and
counters. DynamoDB undoes nothing but the transaction's own items (decisions 55).

Here a transaction records the items it is about to touch, runs moto's own logic with the
table snapshot switched off, and on failure puts back those items alone. Transactions run one
at a time, as DynamoDB serialises conflicting ones.

Usage: python aws_emulator.py [moto_server arguments]
"""

import copy
import sys
import threading
import types

from moto.dynamodb import models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main

_one_transaction_at_a_time = threading.Lock()
_moto_transact_write_items = models.DynamoDBBackend.transact_write_items


def _deepcopy_but_tables(obj, memo=None):
    return obj if isinstance(obj, Table) else copy.deepcopy(obj, memo)


# The only table deep copy in this module is the transaction snapshot; with tables copied by
# reference, moto's "restore" puts back the very table it already holds.
models.copy = types.SimpleNamespace(copy=copy.copy, deepcopy=_deepcopy_but_tables)


def _touched(backend, transact_items):
    """(table, hash, range, item as it is now) for every item the transaction names."""
    touched = []
    for entry in transact_items:
        if len(entry) != 1:
            continue
        op = next(iter(entry.values()))
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        if table is None:
            continue
        attrs = op.get("Key") or op.get("Item") or {}
        hash_attr = attrs.get(table.hash_key_attr)
        range_attr = attrs.get(table.range_key_attr) if table.range_key_attr else None
        if hash_attr is None or (table.range_key_attr and range_attr is None):
            continue
        hash_key = DynamoType(hash_attr)
        range_key = DynamoType(range_attr) if range_attr is not None else None
        current = table.get_item(hash_key, range_key)
        touched.append((table, hash_key, range_key, copy.deepcopy(current)))
    return touched


def _put_back(table, hash_key, range_key, item):
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


def transact_write_items(self, transact_items):
    with _one_transaction_at_a_time:
        before = _touched(self, transact_items)
        try:
            return _moto_transact_write_items(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(before):
                _put_back(table, hash_key, range_key, item)
            raise


models.DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
