namespace Consort.Methods.Api;

/// <summary>
/// co_llm's deferral threshold per generated token (MoCo's <c>threshold_warmup_schedule</c>): fixed, or starting at
/// 1 (never defer) and falling to the target over <c>threshold_warmup_steps</c> tokens, linearly (torch.linspace(1,
/// target, steps)) or along half a cosine; the target from then on.
/// </summary>
public static class DeferralSchedule
{
    /// <summary>Schedules MoCo accepts.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["none", "linear", "cosine"];

    /// <summary>The threshold at token <paramref name="step"/> (0-based).</summary>
    public static double At(string schedule, double target, int warmupSteps, int step)
    {
        if (schedule == "none" || step >= warmupSteps) return target;
        return schedule switch
        {
            "linear" => warmupSteps == 1 ? 1.0 : 1.0 + (target - 1.0) * step / (warmupSteps - 1),
            "cosine" => target + (1.0 - target) * 0.5 * (1 + Math.Cos(Math.PI * step / warmupSteps)),
            _ => throw new ArgumentException($"threshold_warmup_schedule must be one of {string.Join(", ", Kinds)}, got '{schedule}'"),
        };
    }
}
