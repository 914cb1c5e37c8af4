"""The price table of EDDIE_OTEL_PRICES_FILE: what a model's tokens cost when usage is recorded without a cost.

The file is YAML (so JSON too): a mapping of model name to `{input: USD, output: USD}`, each the
price of a million tokens of that type:

    gpt-4o: {input: 2.50, output: 10.00}
    claude-sonnet-4: {input: 3, output: 15}

It is read once, when eddie-otel is configured: a bad file is a ConfigurationError there that
names the variable, the file and the line, never an error later. A model name is a label value
(letters, digits and `_.:/-`, 1 to 64 characters); a model with no price records tokens only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from eddie_otel.errors import ConfigurationError
from eddie_otel.labels import LABEL_VALUE_RE

__all__ = ["EXAMPLE", "PER_TOKENS", "Price", "Prices", "load"]

# An example table shipped with the package (the demo prices its usage with it).
EXAMPLE = Path(__file__).with_name("prices.example.yml")

# Prices are per million tokens.
PER_TOKENS = 1_000_000
# A price above this per million tokens is a mistake (a price per token written per million, say).
MAX_PRICE_USD = 100_000.0
_KEYS = ("input", "output")


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens of one model."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """What `input_tokens` and `output_tokens` cost, in US dollars."""
        return (input_tokens * self.input + output_tokens * self.output) / PER_TOKENS


@dataclass(frozen=True)
class Prices:
    """The price of each model the table names."""

    models: Mapping[str, Price] = field(default_factory=dict)

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """What this usage of `model` costs, in US dollars; None when the table has no price for it."""
        price = self.models.get(model)
        return None if price is None else price.cost(input_tokens, output_tokens)


def load(path: str, variable: str = "EDDIE_OTEL_PRICES_FILE") -> Prices:
    """The price table in the file `path`; ConfigurationError naming `variable`, the file and the line otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{variable}: cannot read the price table {path}: {error}") from None

    def fail(line: int | None, message: str) -> ConfigurationError:
        where = f"{path}, line {line + 1}" if line is not None else path
        return ConfigurationError(f"{variable}: {where}: {message}")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise fail(None if mark is None else mark.line, f"not valid YAML: {problem}") from None
    if root is None:
        return Prices()
    if not isinstance(root, yaml.MappingNode):
        raise fail(root.start_mark.line, "the price table must be a mapping of model name to {input, output}")
    constructor = yaml.constructor.SafeConstructor()
    models: dict[str, Price] = {}
    for key_node, value_node in root.value:
        line = key_node.start_mark.line
        model = constructor.construct_object(key_node, deep=True)
        if not isinstance(model, str) or LABEL_VALUE_RE.fullmatch(model) is None:
            raise fail(line, f"model name {model!r} must be 1-64 letters, digits and _.:/-")
        if model in models:
            raise fail(line, f"model {model!r} is priced twice")
        if not isinstance(value_node, yaml.MappingNode):
            raise fail(
                value_node.start_mark.line, f"the price of {model} must be a mapping {{input: ..., output: ...}}"
            )
        found: dict[str, float] = {}
        for price_key, price_node in value_node.value:
            name = constructor.construct_object(price_key, deep=True)
            price_line = price_key.start_mark.line
            if name not in _KEYS:
                raise fail(price_line, f"unknown key {name!r} in the price of {model}; only input and output")
            if name in found:
                raise fail(price_line, f"{name} is given twice for {model}")
            value = constructor.construct_object(price_node, deep=True)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail(price_line, f"{model}.{name} must be a number of US dollars per million tokens")
            if not math.isfinite(value) or not 0 <= value <= MAX_PRICE_USD:
                raise fail(price_line, f"{model}.{name} must be from 0 to {MAX_PRICE_USD:g}, not {value}")
            found[str(name)] = float(value)
        missing = [name for name in _KEYS if name not in found]
        if missing:
            raise fail(line, f"the price of {model} has no {missing[0]}")
        models[model] = Price(found["input"], found["output"])
    return Prices(models)
