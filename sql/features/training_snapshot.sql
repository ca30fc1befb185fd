-- Point-in-time training snapshot for one base date D, stored as build :build_id (a new
-- row of snapshot_builds that features.build_snapshot inserted in the same transaction,
-- so a failure in any statement leaves no trace of the build). Earlier builds of D are
-- not touched. Bound parameters: build_id, base_dt = D, window_start = D minus the
-- lookback, label_cutoff = D at midnight. Features come from months in [window_start, D);
-- a label counts only if it was observed by label_cutoff (inclusive: a label observed at
-- exactly midnight on D was known when D began).

INSERT INTO training_snapshots (
    build_id, base_dt, customer_id, month,
    age, occupation, annual_income, monthly_inhand_salary,
    num_bank_accounts, num_credit_card, interest_rate, num_of_loan, type_of_loan,
    delay_from_due_date, num_of_delayed_payment, changed_credit_limit,
    num_credit_inquiries, credit_mix, outstanding_debt, credit_utilization_ratio,
    credit_history_age, payment_of_min_amount, total_emi_per_month,
    amount_invested_monthly, payment_behaviour, monthly_balance,
    credit_score, label_observed_at
)
SELECT
    :build_id, :base_dt, f.customer_id, f.month,
    f.age, f.occupation, f.annual_income, f.monthly_inhand_salary,
    f.num_bank_accounts, f.num_credit_card, f.interest_rate, f.num_of_loan, f.type_of_loan,
    f.delay_from_due_date, f.num_of_delayed_payment, f.changed_credit_limit,
    f.num_credit_inquiries, f.credit_mix, f.outstanding_debt, f.credit_utilization_ratio,
    f.credit_history_age, f.payment_of_min_amount, f.total_emi_per_month,
    f.amount_invested_monthly, f.payment_behaviour, f.monthly_balance,
    l.credit_score, l.observed_at
FROM customer_features_monthly AS f
JOIN credit_labels AS l
    ON l.customer_id = f.customer_id AND l.month = f.month
WHERE f.month >= :window_start
    AND f.month < :base_dt
    AND l.observed_at <= :label_cutoff;

UPDATE snapshot_builds AS b
JOIN (
    SELECT COUNT(*) AS row_count, COUNT(DISTINCT customer_id) AS customer_count
    FROM training_snapshots
    WHERE build_id = :build_id
) AS counted
SET b.row_count = counted.row_count, b.customer_count = counted.customer_count
WHERE b.build_id = :build_id;
