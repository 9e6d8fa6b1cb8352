-- Promotions and discounts (seed 004, section 11): market.promo_codes, flash_sales,
-- flash_sale_products. promo_code_usage references orders and is created with them in 4006,
-- together with the trigger that counts and limits usage.

-- ---------------------------------------------------------------------------------------------
-- promo_codes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.promo_codes (
    id                    bigserial PRIMARY KEY,
    code                  varchar(50) NOT NULL,
    name                  varchar(200) NOT NULL,
    description           text,
    type                  market.promo_type_enum NOT NULL,
    value                 numeric(12, 2) NOT NULL,
    min_order_amount      numeric(12, 2) NOT NULL DEFAULT 0,
    max_discount_amount   numeric(12, 2),
    usage_limit           integer,
    usage_count           integer NOT NULL DEFAULT 0,
    usage_limit_per_user  integer DEFAULT 1,
    applicable_to         market.promo_applicable_enum NOT NULL,
    applicable_ids        jsonb,
    starts_at             timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    is_active             boolean NOT NULL DEFAULT true,
    created_by            bigint NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT promo_codes_created_by_fkey FOREIGN KEY (created_by)
        REFERENCES market.users (id),
    CONSTRAINT promo_codes_code_not_blank CHECK (code ~ '\S'),
    -- percentage: 0 < value <= 100; fixed_amount: value > 0; free_shipping: value >= 0
    -- (ignored: the discount is the shipping cost).
    CONSTRAINT promo_codes_value_valid CHECK (
        CASE type
            WHEN 'percentage' THEN value > 0 AND value <= 100
            WHEN 'fixed_amount' THEN value > 0
            ELSE value >= 0
        END),
    CONSTRAINT promo_codes_min_order_amount_non_negative CHECK (min_order_amount >= 0),
    CONSTRAINT promo_codes_max_discount_amount_positive CHECK (max_discount_amount > 0),
    -- NULL usage_limit / usage_limit_per_user mean unlimited.
    CONSTRAINT promo_codes_usage_limit_non_negative CHECK (usage_limit >= 0),
    CONSTRAINT promo_codes_usage_count_non_negative CHECK (usage_count >= 0),
    CONSTRAINT promo_codes_usage_within_limit CHECK (usage_count <= usage_limit),
    CONSTRAINT promo_codes_usage_limit_per_user_positive CHECK (usage_limit_per_user >= 1),
    -- 'all' has no ids; 'category', 'product' and 'seller' name a non-empty JSON array of
    -- positive integer ids of that kind.
    CONSTRAINT promo_codes_applicable_ids_valid CHECK (
        CASE applicable_to
            WHEN 'all' THEN applicable_ids IS NULL
            ELSE coalesce(jsonb_typeof(applicable_ids) = 'array'
                          AND jsonb_array_length(applicable_ids) > 0
                          AND NOT applicable_ids @? '$[*] ? (@.type() != "number")'
                          AND NOT applicable_ids @? '$[*] ? (@ < 1 || @.floor() != @)',
                          false)
        END),
    CONSTRAINT promo_codes_expires_after_starts CHECK (expires_at > starts_at)
);

CREATE UNIQUE INDEX idx_promo_codes_code ON market.promo_codes (code);
CREATE INDEX idx_promo_codes_active ON market.promo_codes (is_active, starts_at, expires_at);
CREATE INDEX idx_promo_codes_type ON market.promo_codes (type);
CREATE INDEX idx_promo_codes_created_by ON market.promo_codes (created_by);

CREATE TRIGGER trg_promo_codes_updated_at
    BEFORE UPDATE ON market.promo_codes
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- flash_sales: time-limited sales
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.flash_sales (
    id                   bigserial PRIMARY KEY,
    name                 varchar(200) NOT NULL,
    description          text,
    discount_percentage  numeric(5, 2) NOT NULL,
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz NOT NULL,
    is_active            boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT flash_sales_discount_percentage_range
        CHECK (discount_percentage > 0 AND discount_percentage <= 100),
    CONSTRAINT flash_sales_ends_after_starts CHECK (ends_at > starts_at)
);

CREATE INDEX idx_flash_sales_active ON market.flash_sales (is_active, starts_at, ends_at);

CREATE TRIGGER trg_flash_sales_updated_at
    BEFORE UPDATE ON market.flash_sales
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- flash_sale_products
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.flash_sale_products (
    id              bigserial PRIMARY KEY,
    flash_sale_id   bigint NOT NULL,
    product_id      bigint NOT NULL,
    original_price  numeric(12, 2) NOT NULL,
    sale_price      numeric(12, 2) NOT NULL,
    stock_limit     integer,
    sold_count      integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT flash_sale_products_flash_sale_id_fkey FOREIGN KEY (flash_sale_id)
        REFERENCES market.flash_sales (id) ON DELETE CASCADE,
    CONSTRAINT flash_sale_products_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id) ON DELETE CASCADE,
    CONSTRAINT flash_sale_products_flash_sale_id_product_id_key
        UNIQUE (flash_sale_id, product_id),
    CONSTRAINT flash_sale_products_original_price_non_negative CHECK (original_price >= 0),
    CONSTRAINT flash_sale_products_sale_price_within_original
        CHECK (sale_price BETWEEN 0 AND original_price),
    -- NULL stock_limit means unlimited. sold_count can never pass it: a sale is recorded with
    -- UPDATE ... SET sold_count = sold_count + $n, which fails (or, with
    -- WHERE sold_count + $n <= stock_limit, matches no row) once the stock is gone.
    -- (With sold_count >= 0 this also keeps stock_limit >= 0.)
    CONSTRAINT flash_sale_products_sold_count_non_negative CHECK (sold_count >= 0),
    CONSTRAINT flash_sale_products_not_oversold CHECK (sold_count <= stock_limit)
);

CREATE INDEX idx_flash_sale_products_sale_id ON market.flash_sale_products (flash_sale_id);
CREATE INDEX idx_flash_sale_products_product_id ON market.flash_sale_products (product_id);

CREATE TRIGGER trg_flash_sale_products_updated_at
    BEFORE UPDATE ON market.flash_sale_products
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
