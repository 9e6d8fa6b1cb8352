-- Product catalog (seed 004, section 2): market.categories, products, product_images,
-- product_variants, product_attributes; the full-text search indexes ("Full-Text Search
-- Indexes"); the category level/cycle trigger and products.published_at.

-- ---------------------------------------------------------------------------------------------
-- categories: multi-level product categories
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.categories (
    id                bigserial PRIMARY KEY,
    parent_id         bigint,
    name              varchar(200) NOT NULL,
    slug              varchar(255) NOT NULL,
    description       text,
    icon_url          text,
    image_url         text,
    level             integer NOT NULL DEFAULT 0,
    sort_order        integer NOT NULL DEFAULT 0,
    is_active         boolean NOT NULL DEFAULT true,
    meta_title        varchar(255),
    meta_description  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,

    CONSTRAINT categories_parent_id_fkey FOREIGN KEY (parent_id)
        REFERENCES market.categories (id),
    CONSTRAINT categories_not_own_parent CHECK (parent_id <> id),
    CONSTRAINT categories_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$')
);

CREATE INDEX idx_categories_parent_id ON market.categories (parent_id);
CREATE UNIQUE INDEX idx_categories_slug ON market.categories (slug);
CREATE INDEX idx_categories_level ON market.categories (level);
CREATE INDEX idx_categories_active ON market.categories (is_active);
-- The seed's expression with coalesce: name || ' ' || NULL would be NULL, and a category
-- without a description could never be found. Queries repeat this expression verbatim.
CREATE INDEX idx_categories_search ON market.categories
    USING gin (to_tsvector('english', name || ' ' || coalesce(description, '')));

CREATE TRIGGER trg_categories_updated_at
    BEFORE UPDATE ON market.categories
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- level is derived: 0 for a root, the parent's level + 1 otherwise; whatever the caller
-- writes is replaced. A move that would make a category its own ancestor is refused.
CREATE FUNCTION market.set_category_level() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_parent_level integer;
BEGIN
    IF NEW.parent_id IS NULL THEN
        NEW.level := 0;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.parent_id IS DISTINCT FROM OLD.parent_id AND EXISTS (
        WITH RECURSIVE up (id, parent_id) AS (
            SELECT c.id, c.parent_id FROM market.categories c WHERE c.id = NEW.parent_id
            UNION
            SELECT c.id, c.parent_id FROM market.categories c JOIN up ON c.id = up.parent_id
        )
        SELECT 1 FROM up WHERE up.id = NEW.id
    ) THEN
        RAISE EXCEPTION 'category % cannot move under its own descendant %', NEW.id, NEW.parent_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'categories_no_cycle';
    END IF;
    SELECT c.level INTO v_parent_level FROM market.categories c WHERE c.id = NEW.parent_id;
    -- An unknown parent is left to categories_parent_id_fkey.
    NEW.level := coalesce(v_parent_level + 1, 0);
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_categories_level
    BEFORE INSERT OR UPDATE OF parent_id, level ON market.categories
    FOR EACH ROW EXECUTE FUNCTION market.set_category_level();

-- When a category's level changes, its children are re-levelled (their own trigger cascades
-- further down).
CREATE FUNCTION market.relevel_category_children() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE market.categories SET level = NEW.level + 1 WHERE parent_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_categories_relevel_children
    AFTER UPDATE OF parent_id, level ON market.categories
    FOR EACH ROW WHEN (OLD.level IS DISTINCT FROM NEW.level)
    EXECUTE FUNCTION market.relevel_category_children();

-- ---------------------------------------------------------------------------------------------
-- products
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.products (
    id                   bigserial PRIMARY KEY,
    seller_id            bigint NOT NULL,
    category_id          bigint NOT NULL,
    name                 varchar(255) NOT NULL,
    slug                 varchar(255) NOT NULL,
    description          text NOT NULL,
    short_description    varchar(500),
    sku                  varchar(100),
    barcode              varchar(100),
    brand                varchar(100),
    base_price           numeric(12, 2) NOT NULL,
    sale_price           numeric(12, 2),
    cost_price           numeric(12, 2),
    currency             varchar(3) NOT NULL DEFAULT 'UZS',
    tax_rate             numeric(5, 2) NOT NULL DEFAULT 0,
    weight               numeric(10, 3),
    length               numeric(10, 2),
    width                numeric(10, 2),
    height               numeric(10, 2),
    status               market.product_status_enum NOT NULL DEFAULT 'draft',
    is_featured          boolean NOT NULL DEFAULT false,
    is_digital           boolean NOT NULL DEFAULT false,
    requires_shipping    boolean NOT NULL DEFAULT true,
    stock_quantity       integer NOT NULL DEFAULT 0,
    low_stock_threshold  integer NOT NULL DEFAULT 10,
    allow_backorder      boolean NOT NULL DEFAULT false,
    min_order_quantity   integer NOT NULL DEFAULT 1,
    max_order_quantity   integer,
    view_count           integer NOT NULL DEFAULT 0,
    rating_average       numeric(3, 2) NOT NULL DEFAULT 0,
    rating_count         integer NOT NULL DEFAULT 0,
    meta_title           varchar(255),
    meta_description     text,
    meta_keywords        text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    published_at         timestamptz,
    deleted_at           timestamptz,

    CONSTRAINT products_seller_id_fkey FOREIGN KEY (seller_id) REFERENCES market.users (id),
    CONSTRAINT products_category_id_fkey FOREIGN KEY (category_id)
        REFERENCES market.categories (id),
    CONSTRAINT products_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    CONSTRAINT products_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT products_base_price_non_negative CHECK (base_price >= 0),
    CONSTRAINT products_cost_price_non_negative CHECK (cost_price >= 0),
    CONSTRAINT products_sale_price_within_base CHECK (sale_price BETWEEN 0 AND base_price),
    CONSTRAINT products_tax_rate_percentage CHECK (tax_rate BETWEEN 0 AND 100),
    -- Each dimension is optional (digital products) but positive when given.
    CONSTRAINT products_dimensions_positive
        CHECK (weight > 0 AND length > 0 AND width > 0 AND height > 0),
    -- Stock may only go below zero for products that allow backorders.
    CONSTRAINT products_stock_non_negative CHECK (stock_quantity >= 0 OR allow_backorder),
    CONSTRAINT products_low_stock_threshold_non_negative CHECK (low_stock_threshold >= 0),
    CONSTRAINT products_min_order_quantity_positive CHECK (min_order_quantity >= 1),
    CONSTRAINT products_max_order_quantity_at_least_min
        CHECK (max_order_quantity >= min_order_quantity),
    CONSTRAINT products_view_count_non_negative CHECK (view_count >= 0),
    CONSTRAINT products_rating_average_range CHECK (rating_average BETWEEN 0 AND 5),
    CONSTRAINT products_rating_count_non_negative CHECK (rating_count >= 0)
);

CREATE INDEX idx_products_seller_id ON market.products (seller_id);
CREATE INDEX idx_products_category_id ON market.products (category_id);
CREATE UNIQUE INDEX idx_products_slug ON market.products (slug);
CREATE UNIQUE INDEX idx_products_sku ON market.products (sku);
CREATE INDEX idx_products_status ON market.products (status);
CREATE INDEX idx_products_featured ON market.products (is_featured);
CREATE INDEX idx_products_rating ON market.products (rating_average DESC);
CREATE INDEX idx_products_created ON market.products (created_at DESC);
-- "Product status and category for filtering" (Composite Indexes).
CREATE INDEX idx_products_category_status ON market.products (category_id, status)
    WHERE deleted_at IS NULL;
-- The seed's full-text index, expression verbatim (name and description are NOT NULL).
-- Search with:
--   WHERE to_tsvector('english', name || ' ' || description)
--         @@ websearch_to_tsquery('english', $1) AND deleted_at IS NULL
CREATE INDEX idx_products_search ON market.products
    USING gin (to_tsvector('english', name || ' ' || description));

CREATE TRIGGER trg_products_updated_at
    BEFORE UPDATE ON market.products
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
CREATE TRIGGER trg_products_seller_role
    BEFORE INSERT OR UPDATE OF seller_id ON market.products
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('seller_id', 'seller');

-- published_at is the first time a product became 'active'; set here when the caller left it
-- NULL, and kept when the product is deactivated and re-activated.
CREATE FUNCTION market.set_product_published_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'active' AND NEW.published_at IS NULL THEN
        NEW.published_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_products_published_at
    BEFORE INSERT OR UPDATE OF status, published_at ON market.products
    FOR EACH ROW EXECUTE FUNCTION market.set_product_published_at();

-- Full-text product search over live products, best match first (ts_rank), using
-- idx_products_search. SQL and STABLE, so the planner inlines it into the caller's query.
CREATE FUNCTION market.search_products(p_query text)
RETURNS SETOF market.products
LANGUAGE sql STABLE AS $$
    SELECT p.*
      FROM market.products p
     WHERE to_tsvector('english', p.name || ' ' || p.description)
           @@ websearch_to_tsquery('english', p_query)
       AND p.deleted_at IS NULL
     ORDER BY ts_rank(to_tsvector('english', p.name || ' ' || p.description),
                      websearch_to_tsquery('english', p_query)) DESC, p.id;
$$;

-- ---------------------------------------------------------------------------------------------
-- product_images
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.product_images (
    id             bigserial PRIMARY KEY,
    product_id     bigint NOT NULL,
    url            text NOT NULL,
    thumbnail_url  text,
    alt_text       varchar(255),
    sort_order     integer NOT NULL DEFAULT 0,
    is_primary     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT product_images_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id) ON DELETE CASCADE
);

CREATE INDEX idx_product_images_product_id ON market.product_images (product_id);
CREATE INDEX idx_product_images_primary ON market.product_images (product_id, is_primary);
-- At most one primary image per product.
CREATE UNIQUE INDEX idx_product_images_one_primary ON market.product_images (product_id)
    WHERE is_primary;

CREATE TRIGGER trg_product_images_updated_at
    BEFORE UPDATE ON market.product_images
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- product_variants: size, colour, ...
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.product_variants (
    id                bigserial PRIMARY KEY,
    product_id        bigint NOT NULL,
    sku               varchar(100),
    name              varchar(255) NOT NULL,
    attributes        jsonb NOT NULL,
    price_adjustment  numeric(12, 2) NOT NULL DEFAULT 0,
    stock_quantity    integer NOT NULL DEFAULT 0,
    image_url         text,
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,

    CONSTRAINT product_variants_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id) ON DELETE CASCADE,
    -- Target of order_items' "the variant is one of the product's" foreign key.
    CONSTRAINT product_variants_id_product_id_key UNIQUE (id, product_id),
    CONSTRAINT product_variants_attributes_object CHECK (jsonb_typeof(attributes) = 'object'),
    CONSTRAINT product_variants_stock_non_negative CHECK (stock_quantity >= 0)
);

CREATE INDEX idx_variants_product_id ON market.product_variants (product_id);
CREATE UNIQUE INDEX idx_variants_sku ON market.product_variants (sku);
CREATE INDEX idx_variants_active ON market.product_variants (is_active);

CREATE TRIGGER trg_product_variants_updated_at
    BEFORE UPDATE ON market.product_variants
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- product_attributes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.product_attributes (
    id          bigserial PRIMARY KEY,
    product_id  bigint NOT NULL,
    name        varchar(100) NOT NULL,
    value       text NOT NULL,
    sort_order  integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT product_attributes_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id) ON DELETE CASCADE
);

CREATE INDEX idx_attributes_product_id ON market.product_attributes (product_id);

CREATE TRIGGER trg_product_attributes_updated_at
    BEFORE UPDATE ON market.product_attributes
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
