namespace Consort.Methods.Api.Routing;

/// <summary>RouteLLM's threshold calibration, used by routers at build time and by the router evaluation.</summary>
public static class ThresholdCalibration
{
    /// <summary>Linear-interpolation quantile (pandas' and numpy's default).</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0) throw new ArgumentException("no values");
        if (q is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(q), "quantile must be within [0, 1]");
        var s = values.Order().ToArray();
        double pos = q * (s.Length - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, s.Length - 1);
        return s[lo] + (pos - lo) * (s[hi] - s[lo]);
    }

    /// <summary>
    /// The threshold at which a share <paramref name="strongShare"/> of the given advantages (on a calibration set)
    /// reaches it: their (1 − share) quantile, as RouteLLM's calibrate_threshold does. A share of 0 gives +∞.
    /// </summary>
    public static double Calibrate(IReadOnlyList<double> advantages, double strongShare)
    {
        if (strongShare is < 0 or > 1 || double.IsNaN(strongShare)) throw new ArgumentOutOfRangeException(nameof(strongShare), "the target share of strong-model calls must be within [0, 1]");
        return strongShare == 0 ? double.PositiveInfinity : Quantile(advantages, 1 - strongShare);
    }
}
