-- Each active customer's latest month of features strictly before :as_of; a customer
-- with no month since :active_since is no longer active. Bound parameters only.
SELECT
    f.customer_id, f.month,
    f.age, f.occupation, f.annual_income, f.monthly_inhand_salary,
    f.num_bank_accounts, f.num_credit_card, f.interest_rate, f.num_of_loan, f.type_of_loan,
    f.delay_from_due_date, f.num_of_delayed_payment, f.changed_credit_limit,
    f.num_credit_inquiries, f.credit_mix, f.outstanding_debt, f.credit_utilization_ratio,
    f.credit_history_age, f.payment_of_min_amount, f.total_emi_per_month,
    f.amount_invested_monthly, f.payment_behaviour, f.monthly_balance
FROM customer_features_monthly AS f
JOIN (
    SELECT customer_id, MAX(month) AS month
    FROM customer_features_monthly
    WHERE month < :as_of AND month >= :active_since
    GROUP BY customer_id
) AS latest
    ON latest.customer_id = f.customer_id AND latest.month = f.month
ORDER BY f.customer_id
