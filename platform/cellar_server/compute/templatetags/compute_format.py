from django import template

register = template.Library()


@register.filter
def get_item(mapping: dict, key: str):
    """mapping[key] in a template ({{ forms|get_item:pool.name }}); None when absent."""
    return (mapping or {}).get(key)
