"""Realistic source files in each supported language, shared by the context tests."""

PYTHON = '''\
"""Inventory service: stock levels and reorder rules."""

import logging
from dataclasses import dataclass, field
from typing import Iterable

log = logging.getLogger(__name__)


@dataclass
class Item:
    sku: str
    name: str
    quantity: int = 0
    tags: list[str] = field(default_factory=list)


class Inventory:
    """Keeps items by SKU and tells when to reorder."""

    def __init__(self, items: Iterable[Item] = ()):
        self._items = {item.sku: item for item in items}

    def add(self, item: Item) -> None:
        if item.sku in self._items:
            self._items[item.sku].quantity += item.quantity
        else:
            self._items[item.sku] = item

    def remove(self, sku: str, count: int) -> int:
        item = self._items.get(sku)
        if item is None:
            raise KeyError(sku)
        taken = min(count, item.quantity)
        item.quantity -= taken
        return taken

    def low_stock(self, threshold: int = 5) -> list[Item]:
        return [item for item in self._items.values() if item.quantity < threshold]


def reorder_report(inventory: Inventory) -> str:
    lines = []
    for item in inventory.low_stock():
        lines.append(f"{item.sku}: {item.name} ({item.quantity} left)")
    return "\\n".join(lines)
'''

TYPESCRIPT = '''\
import { EventEmitter } from "events";
import type { Request, Response } from "express";

export interface User {
  id: number;
  name: string;
  email?: string;
}

export class UserStore extends EventEmitter {
  private users = new Map<number, User>();

  add(user: User): void {
    this.users.set(user.id, user);
    this.emit("added", user);
  }

  find(id: number): User | undefined {
    return this.users.get(id);
  }
}

export function handleGet(store: UserStore, req: Request, res: Response): void {
  const id = Number(req.params.id);
  const user = store.find(id);
  if (!user) {
    res.status(404).send("not found");
    return;
  }
  res.json(user);
}
'''

JAVASCRIPT = '''\
const fs = require("fs");
const path = require("path");

function readConfig(dir) {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) {
    return {};
  }
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

class Cache {
  constructor(limit) {
    this.limit = limit;
    this.entries = new Map();
  }

  get(key) {
    return this.entries.get(key);
  }
}

module.exports = { readConfig, Cache };
'''

RUST = '''\
use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: u64,
    pub owner: String,
    balance: i64,
}

impl Account {
    pub fn new(id: u64, owner: &str) -> Self {
        Account { id, owner: owner.to_string(), balance: 0 }
    }

    pub fn deposit(&mut self, amount: i64) -> Result<i64, String> {
        if amount <= 0 {
            return Err(format!("invalid amount {}", amount));
        }
        self.balance += amount;
        Ok(self.balance)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.owner, self.balance)
    }
}

pub fn totals(accounts: &[Account]) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for account in accounts {
        *out.entry(account.owner.clone()).or_insert(0) += account.balance;
    }
    out
}
'''

GO = '''\
package store

import (
\t"errors"
\t"sync"
)

var ErrNotFound = errors.New("not found")

type Store struct {
\tmu    sync.Mutex
\titems map[string]int
}

func New() *Store {
\treturn &Store{items: make(map[string]int)}
}

func (s *Store) Get(key string) (int, error) {
\ts.mu.Lock()
\tdefer s.mu.Unlock()
\tvalue, ok := s.items[key]
\tif !ok {
\t\treturn 0, ErrNotFound
\t}
\treturn value, nil
}
'''

LUA = '''\
local json = require("json")

local M = {}

function M.load(path)
  local file = io.open(path, "r")
  if not file then
    return nil
  end
  local data = file:read("*a")
  file:close()
  return json.decode(data)
end

local function count(list)
  local n = 0
  for _, value in ipairs(list) do
    if value then
      n = n + 1
    end
  end
  return n
end

M.count = count

return M
'''

# Non-ASCII text everywhere a position could go wrong: CJK, emoji (astral: two UTF-16
# units), accents, CRLF line ends.
PYTHON_UNICODE_CRLF = (
    '# 在庫管理 🚀 inventory\r\n'
    'GREETING = "héllo wörld 👋🏽"\r\n'
    '\r\n'
    'def 挨拶(name: str) -> str:\r\n'
    '    """Say hi 😀 to 名前."""\r\n'
    '    return f"{GREETING}, {name} 🎉"\r\n'
    '\r\n'
    'class Ä:\r\n'
    '    emoji = ["🐍", "🦀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]\r\n'
)


def big_python(min_lines: int) -> str:
    """A long Python module made of many realistic classes and functions."""
    head = "import os\nimport sys\nfrom collections import defaultdict\nfrom typing import Any\n\n\n"
    parts = [head]
    lines = head.count("\n")
    i = 0
    while lines < min_lines:
        block = (
            f"class Worker{i}:\n"
            f'    """Processes queue {i}."""\n'
            f"\n"
            f"    def __init__(self, name: str, retries: int = {i % 5}):\n"
            f"        self.name = name\n"
            f"        self.retries = retries\n"
            f"        self.seen: dict[str, Any] = defaultdict(int)\n"
            f"\n"
            f"    def run(self, jobs: list[str]) -> int:\n"
            f"        done = 0\n"
            f"        for job in jobs:\n"
            f"            if job in self.seen:\n"
            f"                continue\n"
            f"            self.seen[job] += 1\n"
            f"            done += 1\n"
            f"        return done\n"
            f"\n"
            f"\n"
            f"def schedule_{i}(workers, jobs):\n"
            f"    total = 0\n"
            f"    for worker in workers:\n"
            f"        total += worker.run(jobs)\n"
            f"    return total\n"
            f"\n"
            f"\n"
        )
        parts.append(block)
        lines += block.count("\n")
        i += 1
    return "".join(parts)
