-- Reviews and ratings (seed 004, section 7): market.reviews, review_images, review_responses;
-- products.rating_average / rating_count recomputed from approved live reviews.

-- ---------------------------------------------------------------------------------------------
-- reviews
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.reviews (
    id                    bigserial PRIMARY KEY,
    order_id              bigint NOT NULL,
    product_id            bigint NOT NULL,
    seller_id             bigint NOT NULL,
    buyer_id              bigint NOT NULL,
    rating                integer NOT NULL,
    title                 varchar(255),
    content               text,
    pros                  text,
    cons                  text,
    is_verified_purchase  boolean NOT NULL DEFAULT true,
    is_approved           boolean NOT NULL DEFAULT false,
    helpful_count         integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,

    CONSTRAINT reviews_order_id_fkey FOREIGN KEY (order_id) REFERENCES market.orders (id),
    CONSTRAINT reviews_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id),
    CONSTRAINT reviews_seller_id_fkey FOREIGN KEY (seller_id) REFERENCES market.users (id),
    CONSTRAINT reviews_buyer_id_fkey FOREIGN KEY (buyer_id) REFERENCES market.users (id),
    -- The buyer and the seller are the order's.
    CONSTRAINT reviews_buyer_is_order_buyer FOREIGN KEY (order_id, buyer_id)
        REFERENCES market.orders (id, buyer_id),
    CONSTRAINT reviews_seller_is_order_seller FOREIGN KEY (order_id, seller_id)
        REFERENCES market.orders (id, seller_id),
    -- Target of review_responses' "the responding seller is the reviewed one" key.
    CONSTRAINT reviews_id_seller_id_key UNIQUE (id, seller_id),
    -- The seed's CHECK, under the name Postgres gives a column CHECK.
    CONSTRAINT reviews_rating_check CHECK (rating >= 1 AND rating <= 5),
    CONSTRAINT reviews_helpful_count_non_negative CHECK (helpful_count >= 0)
);

CREATE INDEX idx_reviews_product_id ON market.reviews (product_id);
CREATE INDEX idx_reviews_seller_id ON market.reviews (seller_id);
CREATE INDEX idx_reviews_buyer_id ON market.reviews (buyer_id);
CREATE INDEX idx_reviews_order_id ON market.reviews (order_id);
CREATE INDEX idx_reviews_rating ON market.reviews (rating);
CREATE INDEX idx_reviews_approved ON market.reviews (is_approved);
-- One live review per product of an order; a soft-deleted review frees the slot.
CREATE UNIQUE INDEX idx_reviews_one_per_order_product ON market.reviews (order_id, product_id)
    WHERE deleted_at IS NULL;

CREATE TRIGGER trg_reviews_updated_at
    BEFORE UPDATE ON market.reviews
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- The reviewed product is one of the order's items.
CREATE FUNCTION market.check_review_product() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM market.order_items i
                    WHERE i.order_id = NEW.order_id AND i.product_id = NEW.product_id) THEN
        RAISE EXCEPTION 'product % is not an item of order %', NEW.product_id, NEW.order_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'reviews_product_in_order';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_reviews_product_in_order
    BEFORE INSERT OR UPDATE OF order_id, product_id ON market.reviews
    FOR EACH ROW EXECUTE FUNCTION market.check_review_product();

-- products.rating_average = round(avg(rating), 2) and rating_count = count(*) over the
-- product's reviews with is_approved AND deleted_at IS NULL (0 and 0 when there are none).
-- Statement-level: every product a statement touched (old and new product_id) is recomputed
-- once, after locking the products in id order; unchanged products are not written.
CREATE FUNCTION market.refresh_product_rating() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_products bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT product_id) INTO v_products FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT product_id) INTO v_products FROM old_rows;
    ELSE
        SELECT array_agg(DISTINCT product_id) INTO v_products
          FROM (SELECT product_id, rating, is_approved, deleted_at FROM new_rows
                EXCEPT
                SELECT product_id, rating, is_approved, deleted_at FROM old_rows
                UNION ALL
                (SELECT product_id, rating, is_approved, deleted_at FROM old_rows
                 EXCEPT
                 SELECT product_id, rating, is_approved, deleted_at FROM new_rows)) changed;
    END IF;
    IF v_products IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM market.products WHERE id = ANY (v_products) ORDER BY id FOR NO KEY UPDATE;
    UPDATE market.products p
       SET rating_average = s.average, rating_count = s.n
      FROM (SELECT pid,
                   coalesce(round(avg(r.rating), 2), 0) AS average,
                   count(r.id)::integer AS n
              FROM unnest(v_products) AS pid
              LEFT JOIN market.reviews r
                ON r.product_id = pid AND r.is_approved AND r.deleted_at IS NULL
             GROUP BY pid) s
     WHERE p.id = s.pid
       AND (p.rating_average, p.rating_count) IS DISTINCT FROM (s.average, s.n);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_reviews_product_rating_insert
    AFTER INSERT ON market.reviews REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.refresh_product_rating();
CREATE TRIGGER trg_reviews_product_rating_update
    AFTER UPDATE ON market.reviews REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.refresh_product_rating();
CREATE TRIGGER trg_reviews_product_rating_delete
    AFTER DELETE ON market.reviews REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.refresh_product_rating();

-- ---------------------------------------------------------------------------------------------
-- review_images
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.review_images (
    id             bigserial PRIMARY KEY,
    review_id      bigint NOT NULL,
    url            text NOT NULL,
    thumbnail_url  text,
    sort_order     integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT review_images_review_id_fkey FOREIGN KEY (review_id)
        REFERENCES market.reviews (id) ON DELETE CASCADE
);

CREATE INDEX idx_review_images_review_id ON market.review_images (review_id);

-- ---------------------------------------------------------------------------------------------
-- review_responses: the seller's one answer to a review
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.review_responses (
    id          bigserial PRIMARY KEY,
    review_id   bigint NOT NULL,
    seller_id   bigint NOT NULL,
    content     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT review_responses_review_id_fkey FOREIGN KEY (review_id)
        REFERENCES market.reviews (id) ON DELETE CASCADE,
    CONSTRAINT review_responses_seller_id_fkey FOREIGN KEY (seller_id)
        REFERENCES market.users (id),
    -- Only the reviewed seller answers.
    CONSTRAINT review_responses_seller_is_reviewed_seller FOREIGN KEY (review_id, seller_id)
        REFERENCES market.reviews (id, seller_id) ON DELETE CASCADE,
    CONSTRAINT review_responses_content_not_blank CHECK (content ~ '\S')
);

CREATE UNIQUE INDEX idx_review_responses_review_id ON market.review_responses (review_id);
CREATE INDEX idx_review_responses_seller_id ON market.review_responses (seller_id);

CREATE TRIGGER trg_review_responses_updated_at
    BEFORE UPDATE ON market.review_responses
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
