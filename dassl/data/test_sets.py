"""Named test sets: the grammar of DATASET.TEST_SETS items, `NAME=SELECTOR[+PRE[+PRE...]]`.

SELECTOR is `source` (the source domains' test splits), `target` (the target domains'), a domain
name, or `each` (one set per domain, `{domain}` in NAME replaced by its name). PRE names a registered
pre-transform applied to every image of the set before the test transform.
"""
from dataclasses import dataclass

from dassl.errors import ConfigError

__all__ = ["NamedTestSet", "parse_test_sets", "SELECTORS"]

SELECTORS = ("source", "target", "each")
DOMAIN_PLACEHOLDER = "{domain}"


@dataclass(frozen=True)
class NamedTestSet:
    """One named test set: the domains whose test splits it joins, and its pre-transforms."""

    name: str
    domains: tuple
    pre_transforms: tuple = ()


def parse_test_sets(items, domains, source_domains, target_domains, pre_transform_names):
    """Resolve TEST_SETS items into specs, in order; any bad item raises a ValueError that lists the
    valid selectors, domains and pre-transforms."""
    domains = list(domains)
    pre_transform_names = list(pre_transform_names)

    def fail(item, problem):
        raise ConfigError(
            f'DATASET.TEST_SETS item "{item}": {problem}. Items read NAME=SELECTOR[+PRE[+PRE...]] with '
            f"SELECTOR one of {list(SELECTORS)} or a domain of the dataset {domains}, and PRE one of the "
            f"registered pre-transforms {pre_transform_names}; e.g. \"authorized=source\", "
            f'"{{domain}}_clean=each".'
        )

    specs = []
    for item in items:
        if not isinstance(item, str):
            fail(item, f"expected a string, got {type(item).__name__}")
        name, sep, rest = item.partition("=")
        name = name.strip()
        parts = [part.strip() for part in rest.split("+")]
        selector, pres = parts[0], tuple(parts[1:])
        if not sep or not name or not selector:
            fail(item, "expected NAME=SELECTOR")
        for pre in pres:
            if pre not in pre_transform_names:
                fail(item, f'unknown pre-transform "{pre}"')
        if selector == "each":
            if DOMAIN_PLACEHOLDER not in name:
                fail(item, f'"each" makes one set per domain, so NAME must contain {DOMAIN_PLACEHOLDER}')
            resolved = [(name.replace(DOMAIN_PLACEHOLDER, d), (d,)) for d in domains]
        elif selector in ("source", "target"):
            chosen = tuple(source_domains if selector == "source" else target_domains)
            if not chosen:
                fail(item, f"DATASET.{selector.upper()}_DOMAINS is empty")
            if DOMAIN_PLACEHOLDER in name:
                fail(item, f'{DOMAIN_PLACEHOLDER} in NAME needs the "each" selector or a domain name')
            resolved = [(name, chosen)]
        elif selector in domains:
            resolved = [(name.replace(DOMAIN_PLACEHOLDER, selector), (selector,))]
        else:
            fail(item, f'unknown selector "{selector}"')
        for set_name, set_domains in resolved:
            if "{" in set_name or "}" in set_name:
                fail(item, f'NAME "{set_name}" has a brace; the only placeholder is {DOMAIN_PLACEHOLDER}')
            if any(spec.name == set_name for spec in specs):
                fail(item, f'the name "{set_name}" is used twice')
            specs.append(NamedTestSet(set_name, set_domains, pres))
    return specs
