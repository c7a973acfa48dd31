using System.Text.Json.Nodes;

namespace Consort.Methods;

/// <summary>
/// Options every text-level protocol shares (debate, feedback, knowledge cards, ranking and fusing, mixture of agents,
/// topologies, swarms, blackboard): editable role prompts, fault tolerance (quorum, member timeout) and a per-request
/// budget. A method's options derive from this and add their own hyperparameters.
/// </summary>
public abstract class TeamOptions : MethodOptions
{
    /// <summary>Role prompt templates replacing the defaults.</summary>
    [Option("Role prompt templates (an object of role: template) replacing the defaults; `consort methods --json` lists each method's roles and placeholders.",
        DefaultText = "the method's defaults")]
    public Dictionary<string, string>? Prompts { get; set; }

    /// <summary>A JSON file of role: template.</summary>
    [Option("A JSON file of role: template (relative to the config); roles the method does not have are ignored, so one file can serve several methods.")]
    public string? PromptsFile { get; set; }

    /// <summary>Fewest members that must answer in a round; null = all of them.</summary>
    [Option("Fewest answers a round needs: a member that fails (error or member_timeout) is dropped from that round, and recorded in the trace, when at least this many answered; otherwise the request fails naming the members and errors.",
        Min = 1, Max = Limits.MaxRepeats, DefaultText = "every member")]
    public int? Quorum { get; set; }

    /// <summary>Seconds one member call may take (0 = no limit).</summary>
    [Option("Seconds one member call may take before it counts as failed (0 = no limit).", Min = 0, Max = 86_400)]
    public double MemberTimeout { get; set; }

    /// <summary>Per-request budget.</summary>
    [Option("Per-request budget, any of {\"calls\": N, \"tokens\": N, \"cost\": X, \"seconds\": X}: when one is reached the method finishes with what it has (fewer rounds, a smaller vote) and says so in the trace.",
        DefaultText = "none")]
    public JsonObject? Budget { get; set; }

    /// <summary>The parsed budget (after <see cref="Check"/>).</summary>
    public RequestBudget? ParsedBudget { get; private set; }

    /// <summary>The role prompts with this run's overrides (after <see cref="Check"/>).</summary>
    public RolePrompts? Roles { get; private set; }

    /// <summary>
    /// Checks the shared options against the plan before any work: prompts (unknown roles, placeholders), the budget's
    /// keys and values, the quorum against <paramref name="members"/>. Methods call it first in their <c>Validate</c>.
    /// </summary>
    public void Check(RolePrompts prompts, MethodPlan plan, int members)
    {
        Roles = prompts.With(Prompts, PromptsFile, plan.BaseDirectory, plan.Where, ignoreUnknownFileRoles: true);
        ParsedBudget = Budget is null ? null : RequestBudget.Parse(Budget, plan);
        if (Quorum is { } q && q > members) throw plan.Error("quorum", $"= {q} is more than the {members} member(s) that answer in a round");
    }
}
