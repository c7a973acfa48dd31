using System.CommandLine;
using System.Reflection;

namespace Consort.Cli.Commands;

/// <summary><c>consort bench NAME</c>: every <see cref="IBenchCommand"/> in this assembly.</summary>
public sealed class BenchCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var bench = new Command("bench", "Benchmarks that print ratios measured in one run.");
        foreach (var type in Assembly.GetExecutingAssembly().GetTypes()
                     .Where(t => typeof(IBenchCommand).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
                     .OrderBy(t => t.Name))
            bench.Subcommands.Add(((IBenchCommand)Activator.CreateInstance(type)!).Build());
        return bench;
    }
}

/// <summary>Statistics the benchmarks report.</summary>
internal static class BenchStats
{
    /// <summary>The <paramref name="p"/>-th percentile, interpolating linearly between ranks.</summary>
    public static double Percentile(IEnumerable<double> values, double p)
    {
        var s = values.Order().ToArray();
        if (s.Length == 0) throw new ArgumentException("no values");
        double rank = p / 100 * (s.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return s[lo] + (s[hi] - s[lo]) * (rank - lo);
    }

    /// <summary>The median (the mean of the two middle values for an even count).</summary>
    public static double Median(IEnumerable<double> values) => Percentile(values, 50);
}
