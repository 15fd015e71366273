from django import forms
from django.utils.translation import gettext_lazy as _

from channels.models import Channel

from . import selectors
from .models import Warehouse


class WarningFilterForm(forms.Form):
    """The filters of the inventory warning page (all optional, read from the query string)."""

    warehouse = forms.ModelChoiceField(
        label=_("Warehouse"), queryset=Warehouse.objects.all(), to_field_name="code",
        required=False, empty_label=_("All active warehouses"),
    )
    category = forms.ChoiceField(label=_("Category"), required=False)
    channel = forms.ModelChoiceField(
        label=_("Channel"), queryset=Channel.objects.all(), to_field_name="code",
        required=False, empty_label=_("All channels"),
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False,
        choices=[("", _("All statuses")), *selectors.WarningStatus.choices],
    )
    sort = forms.ChoiceField(
        label=_("Sort"), required=False,
        choices=[
            ("severity", _("Most severe first")),
            ("-severity", _("Least severe first")),
            ("cover", _("Fewest days of cover")),
            ("sales", _("Most sold yesterday")),
            ("code", _("SKU code")),
        ],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", _("All categories"))] + [
            (name, name) for name in selectors.categories()
        ]

    def filters(self) -> dict:
        """The valid filters; an invalid one is dropped (and shown as an error)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "warehouse": data.get("warehouse"),
            "category": data.get("category") or None,
            "channel": data.get("channel"),
            "status": data.get("status") or None,
            "sort": data.get("sort") or selectors.DEFAULT_SORT,
        }
