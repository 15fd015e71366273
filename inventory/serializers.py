from rest_framework import serializers

from .models import SKU, Warehouse


class WarehouseSerializer(serializers.ModelSerializer):
    provinces = serializers.ListField(child=serializers.CharField(max_length=32), required=False)

    class Meta:
        model = Warehouse
        fields = ["code", "name", "provinces", "priority", "active"]


class SKUSerializer(serializers.ModelSerializer):
    class Meta:
        model = SKU
        fields = ["code", "barcode", "name", "category"]
