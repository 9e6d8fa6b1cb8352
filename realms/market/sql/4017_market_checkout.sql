-- Realm market: what checkout adds to the seed's order items (not in seed 004;
-- docs/realm-market.md, "Money"):
--   * order_items.flash_sale_product_id: the flash-sale entry whose price and stock the item
--     took, so a cancelled order gives that stock back (sold_count) to the right entry.
--     SET NULL when the entry is deleted: the item keeps its price snapshot.

ALTER TABLE market.order_items
    ADD COLUMN flash_sale_product_id bigint,
    ADD CONSTRAINT order_items_flash_sale_product_id_fkey FOREIGN KEY (flash_sale_product_id)
        REFERENCES market.flash_sale_products (id) ON DELETE SET NULL;

CREATE INDEX idx_order_items_flash_sale_product_id ON market.order_items (flash_sale_product_id)
    WHERE flash_sale_product_id IS NOT NULL;
